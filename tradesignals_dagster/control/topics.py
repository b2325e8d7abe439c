"""Topics: the desired state the registry implies, its diff with the cluster, and applying it.

Partition counts only grow; a shrink or a replication-factor change is reported, never applied,
unless the topic is reset (deleted and recreated), which the registry asks for with
``reset_topic_on_start`` / ``reset_topics_on_start`` and ``apply --on-start``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tradesignals_dagster.control.plan import Change, Notice, Plan
from tradesignals_dagster.kafka.admin import KafkaAdmin, KafkaAdminError, LiveTopic
from tradesignals_dagster.registry.models import StreamingApplication, StreamingTopic

DLQ_RETENTION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it should exist."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    reset_on_start: bool = False
    derived_from: str | None = None


def topic_configs(topic: StreamingTopic) -> dict[str, str]:
    """The Kafka topic configs a registry topic sets."""
    return {
        "retention.ms": str(topic.retention_ms),
        "retention.bytes": str(topic.retention_bytes),
        "cleanup.policy": topic.cleanup_policy.replace(" ", ""),
        "min.insync.replicas": str(topic.min_insync_replicas),
        **topic.configs,
    }


def desired_topics(app: StreamingApplication) -> dict[str, TopicSpec]:
    """Every topic the application needs: the registry's, plus each pipeline's dead-letter topic
    and its state (changelog) topic."""
    out: dict[str, TopicSpec] = {}
    for tid, topic in app.topics.items():
        out[tid] = TopicSpec(
            tid,
            topic.num_partitions,
            topic.replication_factor,
            topic_configs(topic),
            topic.reset_topic_on_start or app.reset_topics_on_start,
        )
    for key, pipe in app.pipelines.items():
        kafka_input = pipe.input.type == "kafka" and pipe.input.kafka_topic_id in app.topics
        source_id = pipe.input.kafka_topic_id if kafka_input else pipe.output.topic_id
        if source_id not in app.topics:
            continue
        source = app.topics[source_id]
        base = {"min.insync.replicas": str(source.min_insync_replicas)}
        dlq = pipe.dlq_topic()
        if dlq not in out:
            out[dlq] = TopicSpec(
                dlq,
                source.num_partitions,
                source.replication_factor,
                {**base, "retention.ms": str(DLQ_RETENTION_MS), "cleanup.policy": "delete"},
                derived_from=key,
            )
        # every pipeline gets one: whether its processor keeps state is known only at start
        out[state_topic(key)] = TopicSpec(
            state_topic(key),
            source.num_partitions,
            source.replication_factor,
            {**base, "cleanup.policy": "compact"},
            derived_from=key,
        )
    for key, table in app.tables.items():  # a table's sink dead-letters into <topic>.dlq too
        fed_by = app.topics.get(table.topic_id)
        if fed_by is not None and table.dlq_topic() not in out:
            out[table.dlq_topic()] = TopicSpec(
                table.dlq_topic(),
                fed_by.num_partitions,
                fed_by.replication_factor,
                {
                    "min.insync.replicas": str(fed_by.min_insync_replicas),
                    "retention.ms": str(DLQ_RETENTION_MS),
                    "cleanup.policy": "delete",
                },
                derived_from=key,
            )
    return out


def state_topic(pipeline_key: str) -> str:
    """The compacted topic a pipeline keeps its open state in (e.g. unfinished bars)."""
    return f"{pipeline_key}.state"


def plan_topics(
    app: StreamingApplication,
    admin: KafkaAdmin,
    only: set[str] | None = None,
    on_start: bool = False,
    delete_orphans: bool = False,
) -> Plan:
    """Compare desired topics with the cluster; ``only`` limits the plan to those topics."""
    desired = desired_topics(app)
    if only is not None:
        desired = {k: v for k, v in desired.items() if k in only}
    live = admin.describe(None if only is None else set(desired))
    brokers = len(admin.metadata().brokers)
    plan = Plan()
    for name, spec in sorted(desired.items()):
        current = live.get(name)
        if current is None and spec.replication_factor > brokers:
            plan.notices.append(
                Notice(
                    "not_enough_brokers",
                    name,
                    f"replication factor {spec.replication_factor} cannot be hosted by {brokers} "
                    f"broker(s) at {admin.bootstrap}; point at a larger cluster (`tradesignals stack up "
                    f"--brokers 3` locally) or choose an environment sized for this one (--env)",
                    blocking=True,
                    data={"replication_factor": spec.replication_factor, "brokers": brokers},
                )
            )
            continue
        if current is None:
            plan.changes.append(
                Change(
                    "create_topic",
                    name,
                    f"create with {spec.partitions} partition(s), replication {spec.replication_factor}",
                    {
                        "partitions": spec.partitions,
                        "replication_factor": spec.replication_factor,
                        "configs": spec.configs,
                    },
                )
            )
            continue
        if spec.reset_on_start and on_start:
            plan.changes.append(
                Change(
                    "reset_topic",
                    name,
                    "delete and recreate (reset_topic_on_start)",
                    {
                        "partitions": spec.partitions,
                        "replication_factor": spec.replication_factor,
                        "configs": spec.configs,
                    },
                )
            )
            continue
        if spec.reset_on_start:
            plan.notices.append(
                Notice(
                    "reset_on_start",
                    name,
                    "reset_topic_on_start is set: the topic is reset when the application starts "
                    "(apply --on-start), not by a plain apply",
                )
            )
        plan.extend(_diff(spec, current))
    if only is None:
        for name in sorted(set(live) - set(desired)):
            if name.startswith("_"):
                continue  # _schemas and other service topics
            if delete_orphans:
                plan.changes.append(Change("delete_topic", name, "not in the registry: delete"))
            else:
                plan.notices.append(
                    Notice(
                        "orphan_topic",
                        name,
                        "in the cluster but not in the registry (apply --delete-orphans deletes it)",
                    )
                )
    return plan


def _diff(spec: TopicSpec, live: LiveTopic) -> Plan:
    plan = Plan()
    changed = {k: (live.configs.get(k), v) for k, v in spec.configs.items() if live.configs.get(k) != v}
    if changed:
        desc = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in sorted(changed.items()))
        plan.changes.append(
            Change(
                "alter_topic_config",
                spec.name,
                desc,
                {
                    "set": {k: new for k, (_, new) in changed.items()},
                    "was": {k: old for k, (old, _) in changed.items()},
                },
            )
        )
    if spec.partitions > live.partitions:
        plan.changes.append(
            Change(
                "add_partitions",
                spec.name,
                f"partitions {live.partitions} -> {spec.partitions}",
                {"from": live.partitions, "to": spec.partitions},
            )
        )
    elif spec.partitions < live.partitions:
        plan.notices.append(
            Notice(
                "shrink_partitions",
                spec.name,
                f"the registry says {spec.partitions} partition(s), the topic has {live.partitions}; "
                "Kafka cannot remove partitions (reset the topic to recreate it)",
                data={"registry": spec.partitions, "live": live.partitions},
            )
        )
    if spec.replication_factor != live.replication_factor:
        plan.notices.append(
            Notice(
                "replication_factor",
                spec.name,
                f"the registry says replication {spec.replication_factor}, the topic has "
                f"{live.replication_factor}; changing it needs a partition reassignment",
                data={"registry": spec.replication_factor, "live": live.replication_factor},
            )
        )
    return plan


def apply_topic_change(admin: KafkaAdmin, change: Change) -> None:
    """Carry out one topic change of a plan."""
    data = change.data
    if change.kind == "create_topic":
        admin.create(
            change.target, data["partitions"], data["replication_factor"], data["configs"], exist_ok=True
        )
    elif change.kind == "reset_topic":
        admin.delete([change.target])
        _recreate(admin, change)
    elif change.kind == "alter_topic_config":
        admin.set_configs(change.target, data["set"])
    elif change.kind == "add_partitions":
        admin.grow(change.target, data["to"])
    elif change.kind == "delete_topic":
        admin.delete([change.target])
    else:  # pragma: no cover - schema changes are applied by control.schemas
        raise ValueError(change.kind)


def _recreate(admin: KafkaAdmin, change: Change) -> None:
    """Deletion is asynchronous in Kafka: retry the create until the old topic is gone."""
    deadline = time.monotonic() + 30
    while True:
        try:
            admin.create(
                change.target,
                change.data["partitions"],
                change.data["replication_factor"],
                change.data["configs"],
            )
            return
        except KafkaAdminError as exc:
            text = str(exc).lower()
            retryable = "already exists" in text or "marked for deletion" in text
            if not retryable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
