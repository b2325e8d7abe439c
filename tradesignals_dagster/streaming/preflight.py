"""Checks a pipeline makes before it consumes anything: schemas registered, topics present.

Most start-up failures are a registry that was not applied; these checks say so in one line
(``run `tradesignals apply```) instead of failing later inside a Kafka client.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
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


def check_topics(admin: KafkaAdmin, topics: list[str]) -> None:
    """Fail clearly when a topic the pipeline uses is missing: the control plane creates them
    all (the registry's and the derived dead-letter and state topics), so apply was not run."""
    live = admin.describe(set(topics))
    missing = [t for t in topics if t not in live]
    if missing:
        raise TopicMissingError(
            f"topic(s) {', '.join(missing)} do not exist; run `tradesignals apply` "
            "(or deploy through `tradesignals pipelines start`, which applies first)"
        )
