"""The redeploy and health sensors, ticked with build_sensor_context and run end to end."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.keys import pipeline_key
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.defs.sensors import pipeline_health, pipeline_redeploy
from tradesignals_dagster.deploy.process import ProcessRuntime
from tradesignals_dagster.settings import Settings

APP_PY = '''
"""A minimal pipeline process: records the config it started with, then idles until SIGTERM."""
import json, os, signal, sys, time
from pathlib import Path
from tradesignals_dagster.registry.loader import load_application


def build(ctx):
    """Never called: this process stands in for a pipeline without running the runtime."""
    raise NotImplementedError


if __name__ == "__main__":
    app = load_application(os.environ["TRADESIGNALS_REGISTRY"], os.environ["TRADESIGNALS_PIPELINES_DIR"])
    key = os.environ["TRADESIGNALS_PIPELINE"]
    out = Path(os.environ["TRADESIGNALS_STATE_DIR"]) / f"{key}.started.json"
    out.write_text(json.dumps({"pid": os.getpid(), "config": app.pipelines[key].config}))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.05)
    sys.exit(0)
'''


@pytest.fixture
def project(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    prefix = f"sn{uuid.uuid4().hex[:8]}"
    reg, pipes, state = tmp_path / "registry", tmp_path / "pipelines", tmp_path / "state"
    reg.mkdir()
    key = f"{prefix}_p"
    (reg / "pipelines.yaml").write_text(
        yaml.safe_dump(
            {
                "StreamingApplication": {
                    "id": prefix,
                    "Topics": {
                        f"{prefix}_in": {
                            "num_partitions": 1,
                            "replication_factor": 1,
                            "min_insync_replicas": 1,
                            "value_serializer": "json",
                        },
                        f"{prefix}_out": {
                            "num_partitions": 1,
                            "replication_factor": 1,
                            "min_insync_replicas": 1,
                            "value_serializer": "json",
                        },
                    },
                    "Pipelines": {
                        key: {
                            "input": {"type": "kafka", "kafka_topic_id": f"{prefix}_in"},
                            "output": {"topic_id": f"{prefix}_out"},
                        }
                    },
                }
            }
        )
    )
    (pipes / key).mkdir(parents=True)
    (pipes / key / "app.py").write_text(APP_PY)
    (pipes / key / "config.yaml").write_text("bar_volume: 100\n")
    for name, value in (
        ("BOOTSTRAP_SERVERS", stack.bootstrap_servers),
        ("SCHEMA_REGISTRY_URL", stack.schema_registry_url),
    ):
        monkeypatch.setenv(f"TRADESIGNALS_{name}", value)
    settings = Settings(
        registry=reg,
        pipelines_dir=pipes,
        state_dir=state,
        bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.schema_registry_url,
    )
    resource = TradesignalsResource(registry=str(reg), pipelines_dir=str(pipes), state_dir=str(state))
    runtime = ProcessRuntime(state)
    yield settings, resource, runtime, key
    for status in runtime.list():
        runtime.stop(status.key, timeout=10)


def run_requested(settings: Settings, request: dg.RunRequest) -> None:
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=list(request.asset_selection or []), tags=dict(request.tags), raise_on_error=False
    )
    assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_step_failure]


def started(settings: Settings, key: str) -> dict[str, Any]:
    return json.loads((settings.state_dir / f"{key}.started.json").read_text())


def wait_started(settings: Settings, key: str, pid: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            info = started(settings, key)
            if info["pid"] == pid:
                return info
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"pipeline {key} (pid {pid}) never reported its start")


def child_pid(runtime: ProcessRuntime, key: str) -> int:
    """The pipeline's own pid (the runtime's supervisor is its parent)."""
    return int(runtime.status(key).extra["child_pid"])


def tick(sensor: dg.SensorDefinition, resource: TradesignalsResource, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(cursor=cursor, resources={"tradesignals": resource}) as ctx:
        result = sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def test_redeploy_sensor_requests_exactly_the_changed_pipeline_once(project: Any) -> None:
    settings, resource, runtime, key = project
    first = tick(pipeline_redeploy, resource, None)
    assert [r.asset_selection for r in first.run_requests or []] == [[pipeline_key(key)]], first.skip_reason
    run_requested(settings, first.run_requests[0])  # type: ignore[index]
    pid = child_pid(runtime, key)
    assert wait_started(settings, key, pid)["config"] == {"bar_volume": 100}

    quiet = tick(pipeline_redeploy, resource, first.cursor)
    assert quiet.run_requests == []

    (settings.pipelines_dir / key / "config.yaml").write_text("bar_volume: 250\n")
    changed = tick(pipeline_redeploy, resource, quiet.cursor)
    assert [r.asset_selection for r in changed.run_requests or []] == [[pipeline_key(key)]]
    assert "differs" in changed.run_requests[0].tags["tradesignals/reason"]  # type: ignore[index]
    again = tick(pipeline_redeploy, resource, changed.cursor)
    assert again.run_requests == [], "the same change must not be requested twice"

    run_requested(settings, changed.run_requests[0])  # type: ignore[index]
    new_pid = child_pid(runtime, key)
    assert runtime.status(key).running and new_pid != pid
    assert wait_started(settings, key, new_pid)["config"] == {"bar_volume": 250}
    assert tick(pipeline_redeploy, resource, again.cursor).run_requests == []


def test_health_sensor_brings_back_a_killed_pipeline_with_backoff(project: Any) -> None:
    settings, resource, runtime, key = project
    first = tick(pipeline_redeploy, resource, None)
    run_requested(settings, first.run_requests[0])  # type: ignore[index]
    pid = child_pid(runtime, key)

    healthy = tick(pipeline_health, resource, None)
    assert healthy.run_requests == []
    assert [e.asset_key for e in healthy.asset_events] == [pipeline_key(key)]

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while runtime.status(key).state != "crashed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runtime.status(key).state == "crashed"

    restart = tick(pipeline_health, resource, healthy.cursor)
    assert [r.asset_selection for r in restart.run_requests or []] == [[pipeline_key(key)]]
    assert "crashed" in restart.run_requests[0].tags["tradesignals/reason"]  # type: ignore[index]
    assert tick(pipeline_health, resource, restart.cursor).run_requests == [], (
        "backoff: no second request at once"
    )

    run_requested(settings, restart.run_requests[0])  # type: ignore[index]
    assert runtime.status(key).running and child_pid(runtime, key) != pid


def test_a_reverted_config_gets_a_run_key_of_its_own(project: Any) -> None:
    """Config A -> B -> A: the revert's run must not carry the first deploy's run key, since
    Dagster never launches a run key twice (the daemon would skip it and the pipeline would stay
    on B for good)."""
    settings, resource, runtime, key = project
    config = settings.pipelines_dir / key / "config.yaml"
    first = tick(pipeline_redeploy, resource, None)
    run_requested(settings, first.run_requests[0])  # type: ignore[index]
    config.write_text("bar_volume: 250\n")
    to_b = tick(pipeline_redeploy, resource, first.cursor)
    run_requested(settings, to_b.run_requests[0])  # type: ignore[index]
    assert tick(pipeline_redeploy, resource, to_b.cursor).run_requests == []

    config.write_text("bar_volume: 100\n")
    back_to_a = tick(pipeline_redeploy, resource, to_b.cursor)
    keys = [r.run_key for r in (*first.run_requests, *to_b.run_requests, *back_to_a.run_requests)]  # type: ignore[misc]
    assert len(keys) == 3 and len(set(keys)) == 3, keys
    run_requested(settings, back_to_a.run_requests[0])  # type: ignore[index]
    assert wait_started(settings, key, child_pid(runtime, key))["config"] == {"bar_volume": 100}
