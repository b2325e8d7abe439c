"""What ``configs:`` of a topic may hold: known Kafka topic configs, scalar values, no overlap.

``configs:`` is passed to Kafka verbatim, so a typo there fails at apply time and a nested value
means nothing to Kafka. The four settings the registry has first-class keys for
(``retention_ms``, ``retention_bytes``, ``cleanup_policy``, ``min_insync_replicas``) are refused
in ``configs:`` altogether: with two places to set one value, a reviewer cannot tell which wins.
"""

from __future__ import annotations

from typing import Any

from tradesignals_dagster.registry.normalise import suggest

FIRST_CLASS = {
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "cleanup.policy": "cleanup_policy",
    "min.insync.replicas": "min_insync_replicas",
}
"""Kafka config -> the registry key that sets it."""

KNOWN_TOPIC_CONFIGS = frozenset(
    {
        *FIRST_CLASS,
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "preallocate",
        "remote.log.copy.disable",
        "remote.log.delete.on.disable",
        "remote.storage.enable",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    }
)
"""Topic-level configs of Kafka 4.x (https://kafka.apache.org/documentation/#topicconfigs)."""

MAX_CONFIG_VALUE = 1024


def configs_problems(value: Any) -> list[str]:
    """Every reason the ``configs:`` mapping ``value`` is refused (empty when it is fine)."""
    if not isinstance(value, dict):
        return []  # the model reports the wrong type itself
    problems = []
    for key, item in value.items():
        key = str(key)
        if key in FIRST_CLASS:
            problems.append(f"'{key}' has its own key: set {FIRST_CLASS[key]} instead of configs.{key}")
        elif key not in KNOWN_TOPIC_CONFIGS:
            problems.append(f"'{key}' is not a Kafka topic config{suggest(key, sorted(KNOWN_TOPIC_CONFIGS))}")
        elif isinstance(item, dict | list) or item is None:
            problems.append(f"'{key}' needs a single value (a string, number or boolean)")
        elif len(str(item)) > MAX_CONFIG_VALUE:
            problems.append(f"'{key}' has a value longer than {MAX_CONFIG_VALUE} characters")
    return problems
