"""A single broker SIGKILLed under load and started again: both flagship pipelines process again.

This was a defect: after the broker came back, the bars pipeline's static consumer hit
librdkafka's fatal "fenced by other consumer with same group.instance.id", stayed `running`
while it processed nothing, and neither the health check nor the health sensor noticed. Now a
fatal client error ends the pipeline (non-zero exit, reason logged), and a pipeline that makes
no progress while its lag grows is reported as stalled; the health sensor brings both back.

The broker here is private to the test (killing the session's broker would hurt other tests).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dagster_sensors import run_requested, tick
from test_pipelines_support import PipelineEnv, committed, end_offsets, write_env

from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.defs.sensors import pipeline_health
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.kafka_broker import KafkaBroker
from tradesignals_dagster.stack.stack import stack_down, stack_up

RECOVERY_S = 60.0


@pytest.fixture
def private_stack(tmp_path: Path, kafka_jar_dir: Path) -> Iterator[tuple[KafkaBroker, Any]]:
    state = tmp_path / "stack"
    broker = KafkaBroker(state, jar_dir=kafka_jar_dir)
    broker.start()
    info = stack_up(Settings(state_dir=state), kafka_port=broker.port, jar_dir=kafka_jar_dir)

    class Stack:
        bootstrap_servers = info["bootstrap_servers"]
        schema_registry_url = info["schema_registry_url"]

    try:
        yield broker, Stack
    finally:
        stack_down(Settings(state_dir=state))
        broker.stop()


def _progress(env: PipelineEnv, group: str) -> tuple[int, int]:
    """(trades produced by ingest, trades committed by the bars pipeline)."""
    try:
        produced = sum(end_offsets(env, env.trades).values())
    except Exception:  # the broker is down or still electing leaders
        return -1, -1
    done = sum(max(o, 0) for o in committed(env, group, env.trades).values())
    return produced, done


def test_both_pipelines_process_again_after_the_broker_is_killed_and_restarted(
    tmp_path: Path, private_stack: tuple[KafkaBroker, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, stack = private_stack
    env = write_env(
        tmp_path / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "20", "seed": "3", "rate": "2000"},
        },
        bars_config={"bar_volume": 200, "runtime": {"checkpoint_interval_s": 0.5}},
    )
    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", stack.schema_registry_url)
    settings: Settings = env.settings
    runtime = runtime_for(settings)
    resource = TradesignalsResource(
        registry=str(settings.registry),
        pipelines_dir=str(settings.pipelines_dir),
        state_dir=str(settings.state_dir),
    )
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    try:
        for key in (env.ingest, env.bars_pipeline):
            runtime.deploy(desired_state(env.app, key, settings))
        _wait_progress(env, group, (0, 0), 60, "the pipelines to start processing")

        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        time.sleep(3)
        broker.start()
        restarted = time.monotonic()
        baseline = _progress(env, group)
        cursor: str | None = None
        restarts: list[str] = []
        deadline = restarted + RECOVERY_S
        while True:
            now = _progress(env, group)
            if now[0] > max(baseline[0], 0) + 500 and now[1] > max(baseline[1], 0) + 500:
                break
            assert time.monotonic() < deadline, (
                f"not processing {RECOVERY_S:.0f}s after the broker restart: progress {baseline} -> {now}; "
                f"states {[(s.key, s.state, s.detail[-300:]) for s in runtime.list()]}"
            )
            result = tick(pipeline_health, resource, cursor)
            cursor = result.cursor
            for request in result.run_requests or []:
                restarts.append(request.tags["tradesignals/reason"])
                run_requested(settings, request)
            time.sleep(2)
        print(f"recovered in {time.monotonic() - restarted:.1f}s; restarts: {restarts}")
        states = {s.key: s.state for s in runtime.list()}
        assert states == {env.ingest: "running", env.bars_pipeline: "running"}
    finally:
        for status in runtime.list():
            runtime.stop(status.key, timeout=20)


def _wait_progress(env: PipelineEnv, group: str, since: tuple[int, int], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = _progress(env, group)
        if now[0] > since[0] + 500 and now[1] > since[1] + 500:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {now}"
        time.sleep(0.5)
