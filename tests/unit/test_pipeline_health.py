"""The health assessment shared by `pipelines status`, the asset check and the health sensor,
and the runtime's reading of librdkafka's fatal errors."""

from __future__ import annotations

from confluent_kafka import KafkaError

from tradesignals_dagster.deploy.health import assess
from tradesignals_dagster.deploy.runtime import RuntimeStatus
from tradesignals_dagster.streaming.errors import is_fatal


def _status(state: str = "running", detail: str = "") -> RuntimeStatus:
    return RuntimeStatus(key="p", state=state, runtime="process", detail=detail)  # type: ignore[arg-type]


def test_input_waiting_and_no_batch_for_the_threshold_is_a_stall() -> None:
    health = assess(_status(), lag=1200, metrics={"seconds_since_last_batch": 61.0}, stall_after_s=60)
    assert health.stalled
    assert "1200 input message(s) wait" in health.reason and "61s" in health.reason


def test_an_idle_pipeline_or_a_busy_one_is_not_stalled() -> None:
    idle = assess(_status(), lag=0, metrics={"seconds_since_last_batch": 3600.0}, stall_after_s=60)
    busy = assess(_status(), lag=50_000, metrics={"seconds_since_last_batch": 0.01}, stall_after_s=60)
    feed = assess(_status(), lag=None, metrics={"seconds_since_last_batch": 3600.0}, stall_after_s=60)
    unknown = assess(_status(), lag=10, metrics={}, stall_after_s=60)  # metrics endpoint silent
    assert [h.state for h in (idle, busy, feed, unknown)] == ["running"] * 4


def test_a_process_that_is_not_running_keeps_its_runtime_state() -> None:
    health = assess(
        _status("crashed", "boom\nfenced by other consumer"), lag=10, metrics={}, stall_after_s=60
    )
    assert health.state == "crashed" and health.reason == "fenced by other consumer"


def test_fatal_errors_are_recognised_in_both_shapes_librdkafka_uses() -> None:
    raised = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True)
    propagated = KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced")
    transient = KafkaError(KafkaError._TRANSPORT, "connection refused")
    assert is_fatal(raised) and is_fatal(propagated)
    assert not is_fatal(transient)
