"""Replication health of live topics: under-replicated, below min ISR, offline partitions.

What an operator checks first when a broker dies. The same function feeds the
``kafka/<topic>`` asset check (fails when a partition's live ISR is below the topic's
``min.insync.replicas``, i.e. producers with ``acks=all`` are refused), ``tradesignals stack
status`` and the health sensor's reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tradesignals_dagster.kafka.admin import KafkaAdmin


@dataclass(frozen=True)
class ReplicationHealth:
    """One topic's partitions as the cluster sees them now."""

    topic: str
    partitions: int
    replication_factor: int
    min_isr: int
    live_brokers: int
    under_replicated: list[int] = field(default_factory=list)
    """Partitions whose ISR is smaller than their replica set (a follower is behind or down)."""
    below_min_isr: list[int] = field(default_factory=list)
    """Partitions that refuse ``acks=all`` writes: ISR smaller than ``min.insync.replicas``."""
    offline: list[int] = field(default_factory=list)
    """Partitions without a leader: neither readable nor writable."""
    smallest_isr: int = 0

    @property
    def writable(self) -> bool:
        """Every partition has a leader and enough in-sync replicas for ``acks=all``."""
        return not self.offline and not self.below_min_isr

    def summary(self) -> str:
        """One line for status output and check metadata."""
        if self.writable and not self.under_replicated:
            rf = self.replication_factor
            return f"{self.topic}: {self.partitions} partition(s) fully replicated (RF {rf})"
        parts = []
        if self.offline:
            parts.append(f"{len(self.offline)} offline {self.offline}")
        if self.below_min_isr:
            parts.append(f"{len(self.below_min_isr)} below min ISR {self.min_isr} {self.below_min_isr}")
        if self.under_replicated:
            parts.append(f"{len(self.under_replicated)} under-replicated {self.under_replicated}")
        return (
            f"{self.topic}: "
            + ", ".join(parts)
            + f" (RF {self.replication_factor}, smallest ISR {self.smallest_isr})"
        )


def replication_health(admin: KafkaAdmin, names: Iterable[str] | None = None) -> dict[str, ReplicationHealth]:
    """Replication health of the named topics (all non-internal topics when None)."""
    meta = admin.metadata()
    configs = {name: live.configs for name, live in admin.describe(names).items()}
    out: dict[str, ReplicationHealth] = {}
    for name, conf in configs.items():
        topic = meta.topics.get(name)
        if topic is None:
            continue
        parts = list(topic.partitions.values())
        min_isr = int(conf.get("min.insync.replicas", "1"))
        rf = max((len(p.replicas) for p in parts), default=0)
        out[name] = ReplicationHealth(
            topic=name,
            partitions=len(parts),
            replication_factor=rf,
            min_isr=min_isr,
            live_brokers=len(meta.brokers),
            under_replicated=sorted(p.id for p in parts if len(p.isrs) < len(p.replicas)),
            below_min_isr=sorted(p.id for p in parts if len(p.isrs) < min_isr),
            offline=sorted(p.id for p in parts if p.leader < 0),
            smallest_isr=min((len(p.isrs) for p in parts), default=0),
        )
    return out
