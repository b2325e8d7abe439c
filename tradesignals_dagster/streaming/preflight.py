"""Checks a pipeline makes before it consumes anything: schemas registered, topics present.

Most start-up failures are a registry that was not applied; these checks say so in one line
(``run `tradesignals apply```) instead of failing later inside a Kafka client.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from tradesignals_dagster.control.topics import DLQ_RETENTION_MS
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.registry.models import StreamingTopic
from tradesignals_dagster.streaming.errors import (
    PipelineConfigError,
    SchemaNotRegisteredError,
    TopicMissingError,
)
from tradesignals_dagster.streaming.processors.base import BuildContext, Processor, ProcessorFactory


def registered_schema_id(registry: SchemaRegistry, subject: str, schema: dict[str, Any], topic: str) -> int:
    """The id under which ``subject`` holds exactly ``schema`` (the registry's), preferring the
    latest version; :class:`SchemaNotRegisteredError` says to run apply otherwise."""
    versions = registry.versions(subject)
    if not versions:
        raise SchemaNotRegisteredError(
            f"subject {subject} (topic {topic}) has no registered schema; run `tradesignals apply`"
        )
    for version in reversed(versions):
        if version.schema == schema:
            return version.schema_id
    raise SchemaNotRegisteredError(
        f"the registry's schema for topic {topic} is not registered under {subject} (the latest "
        f"is version {versions[-1].version}); run `tradesignals plan` and `tradesignals apply`"
    )


def build_processor(factory: ProcessorFactory, ctx: BuildContext) -> Processor:
    """``factory(ctx)``, turning a settings validation error into a :class:`PipelineConfigError`."""
    try:
        return factory(ctx)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise PipelineConfigError(
            f"pipelines/{ctx.pipeline.key}/config.yaml does not fit the processor: {problems}"
        ) from None


def check_topics(
    admin: KafkaAdmin,
    *,
    required: list[str],
    derived: list[tuple[str, bool]],
    template: StreamingTopic,
    create_derived: bool,
    log: logging.Logger,
) -> None:
    """Fail clearly when a ``required`` topic is missing (apply was not run).

    ``derived`` lists ``(topic, compacted)`` dead-letter/state topics. The control plane
    derives them for kafka-input pipelines only, so with ``create_derived`` (feed pipelines)
    a missing one is created like the control plane would, sized as ``template``.
    """
    live = admin.describe(set(required) | {t for t, _ in derived})
    for topic in required:
        if topic not in live:
            raise TopicMissingError(f"topic {topic} does not exist; run `tradesignals apply`")
    for topic, compact in derived:
        if topic in live:
            continue
        if not create_derived:
            raise TopicMissingError(f"topic {topic} does not exist; run `tradesignals apply`")
        configs = {"min.insync.replicas": str(template.min_insync_replicas)}
        if compact:
            configs["cleanup.policy"] = "compact"
        else:
            configs.update({"cleanup.policy": "delete", "retention.ms": str(DLQ_RETENTION_MS)})
        log.warning("creating derived topic", extra={"topic": topic, "configs": configs})
        try:
            admin.create(topic, template.num_partitions, template.replication_factor, configs)
        except TradesignalsError as exc:
            if "already exists" not in str(exc).lower():
                raise
