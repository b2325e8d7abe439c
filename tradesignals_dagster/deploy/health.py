"""Whether a running pipeline is healthy: one assessment for the CLI, the asset check and the
health sensor.

A pipeline can run and still do nothing: a consumer stuck after a broker failure, a transform
blocked on a lock. Its process state says ``running``; only the data tells. The assessment
combines the broker's view (the consumer group's lag: messages waiting) with the pipeline's own
(seconds since it last processed a batch, from its metrics endpoint): input waiting while no
batch was processed for ``stall_after_s`` is a stall. An idle pipeline has no lag, and a busy
one processes batches every few milliseconds, so neither is mistaken for one.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException

from tradesignals_dagster.deploy.runtime import RuntimeStatus
from tradesignals_dagster.deploy.workloads import workload_topics
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.replication import replication_health
from tradesignals_dagster.registry.models import StreamingApplication


@dataclass(frozen=True)
class Health:
    """The pipeline's state as operators should see it, and why."""

    state: str
    """``running``, ``stalled``, or the runtime's own state (``crashed``, ``stopped``...)."""
    reason: str = ""

    @property
    def stalled(self) -> bool:
        """Running, but making no progress while input waits."""
        return self.state == "stalled"


def assess(status: RuntimeStatus, lag: int | None, metrics: dict[str, float], stall_after_s: float) -> Health:
    """The health of a pipeline from its runtime status, its group lag and its metrics."""
    if not status.running:
        return Health(status.state, status.detail.strip().splitlines()[-1] if status.detail else "")
    idle_for = metrics.get("seconds_since_last_batch")
    if lag is not None and lag > 0 and idle_for is not None and idle_for >= stall_after_s:
        return Health(
            "stalled",
            f"stalled: no batch processed for {idle_for:.0f}s while {lag} input message(s) wait "
            f"(threshold {stall_after_s:.0f}s)",
        )
    return Health("running")


def replication_reasons(
    app: StreamingApplication, keys: list[str], admin: KafkaAdmin
) -> dict[str, list[str]]:
    """Per workload, the replication problems of the topics it reads or writes (under-replicated,
    below min ISR, offline), as one line each; empty when the cluster cannot answer.

    The first thing an on-call operator wants beside "crashed" or "stalled": a broker is down.
    """
    topics = {key: workload_topics(app, key) for key in keys}
    wanted = set().union(*topics.values()) if topics else set()
    if not wanted:
        return {key: [] for key in keys}
    try:
        health = replication_health(admin, wanted)
    except (TradesignalsError, KafkaException):  # an unanswering cluster must not stop the sensor
        return {key: [] for key in keys}
    bad = {t: h.summary() for t, h in health.items() if h.under_replicated or not h.writable}
    return {key: sorted(bad[t] for t in topics[key] if t in bad) for key in keys}
