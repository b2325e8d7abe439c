"""A config change reaching a new container through the whole Dagster path (issue 12).

What an operator sees: ``config.yaml`` is edited, and some seconds later the new container
consumes. In between: the ``pipeline_redeploy`` sensor's next tick (every
``TRADESIGNALS_REDEPLOY_INTERVAL_S``) sees the changed desired version and requests a run; the
daemon's run queue launches it; the run loads the code location and materializes
``pipelines/<id>``, which is :func:`deploy_pipeline`; the new container starts and consumes.

Measured against a real ``dagster-daemon run`` (the instance file ``make dev`` uses, the docker
runtime, a fresh local stack) with trades arriving at 2,000/s. The registry is the flagship's,
trimmed to the volume-bars pipeline, so the daemon deploys nothing else. Each change's figure
is split into: change -> run requested (the sensor wait), requested -> run started (queue and
launch), started -> new container consuming (code load, deploy, container start).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from bench.streaming_kafka import BARS_PIPELINE, ROOT
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.deploy.runtime import PipelineRuntime
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import Settings

DAGSTER_BIN = Path(sys.executable).parent
INSTANCE_YAML = ROOT / "tradesignals_dagster" / "dev_instance.yaml"
CHANGES = 4
BAR_VOLUMES = (750, 500)


@dataclass
class ChangeTiming:
    """One config change, seconds from the edit."""

    requested_s: float
    started_s: float
    consuming_s: float
    sensor: str
    """Which sensor's run deployed it (``redeploy`` or ``health``)."""


def trim_registry(root: Path) -> None:
    """Keep only the volume-bars pipeline (and drop the sections that build on the others)."""
    path = root / "registry" / "pipelines.yaml"
    doc = yaml.safe_load(path.read_text())
    app = doc["StreamingApplication"]
    app["Pipelines"] = {BARS_PIPELINE: app["Pipelines"][BARS_PIPELINE]}
    for section in ("Tables", "Datasets", "Models"):
        app.pop(section, None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def daemon_env(settings: Settings, home: Path) -> dict[str, str]:
    """The daemon's environment: the bench's settings, nothing inherited from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADESIGNALS_", "DAGSTER_"))}
    env.update(
        {
            "VIRTUAL_ENV": sys.prefix,
            "DAGSTER_HOME": str(home),
            "TRADESIGNALS_REGISTRY": str(settings.registry),
            "TRADESIGNALS_PIPELINES_DIR": str(settings.pipelines_dir),
            "TRADESIGNALS_STATE_DIR": str(settings.state_dir),
            "TRADESIGNALS_BOOTSTRAP_SERVERS": str(settings.bootstrap_servers),
            "TRADESIGNALS_SCHEMA_REGISTRY_URL": str(settings.schema_registry_url),
            "TRADESIGNALS_RUNTIME": settings.runtime,
        }
    )
    return env


@contextmanager
def running_daemon(root: Path, settings: Settings) -> Iterator[Path]:
    """``dagster-daemon run`` on a workspace of its own; yields DAGSTER_HOME, stops it after."""
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
    workspace = root / "workspace.yaml"
    module = {"module_name": "tradesignals_dagster.definitions", "location_name": "tradesignals"}
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": module}]}))
    log = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [str(DAGSTER_BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=root,
        env=daemon_env(settings, home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield home
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break
        log.close()


def _records_in(runtime: PipelineRuntime) -> float:
    try:
        return float(runtime.metrics(BARS_PIPELINE).get("records_in_total", 0.0))
    except Exception:
        return 0.0


def _wait(probe: Callable[[], Any], timeout: float, what: str, log: Path) -> float:
    """Poll ``probe`` every 50 ms; the perf_counter when it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return time.perf_counter()
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _run_times(home: Path, since: float) -> tuple[float, float, str]:
    """(created, started, run key) of the first run launched for the pipeline after ``since``:
    normally the redeploy sensor's; the health sensor's when it saw the old container go first."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"tradesignals/pipeline": BARS_PIPELINE}))
    after = sorted(
        (r for r in runs if r.create_timestamp.timestamp() >= since), key=lambda r: r.create_timestamp
    )
    started = after[0].start_time if after else None
    if started is None:
        keys = [r.dagster_run.tags.get("dagster/run_key") for r in runs]
        raise RuntimeError(f"no run started for {BARS_PIPELINE} since the change; runs: {keys}")
    first = after[0]
    return (
        first.create_timestamp.timestamp(),
        started,
        first.dagster_run.tags.get("dagster/run_key", ""),
    )


def one_change(settings: Settings, home: Path, runtime: PipelineRuntime, bar_volume: int) -> ChangeTiming:
    """Edit config.yaml and time the way to the new container consuming."""
    log = home.parent / "daemon.log"
    config = settings.pipelines_dir / BARS_PIPELINE / "config.yaml"
    text = config.read_text()
    changed = "\n".join(
        f"bar_volume: {bar_volume}" if line.startswith("bar_volume:") else line for line in text.splitlines()
    )
    config.write_text(changed + "\n")
    wall0, t0 = time.time(), time.perf_counter()
    app = load_application(settings.registry, settings.pipelines_dir)
    version = desired_state(app, BARS_PIPELINE, settings).version
    try:
        _wait(lambda: runtime.status(BARS_PIPELINE).version == version, 120, "the new version running", log)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}\nruntime status: {runtime.status(BARS_PIPELINE)}") from None
    _wait(lambda: _records_in(runtime) > 0, 120, "the new container consuming", log)
    consuming = time.perf_counter() - t0
    created, started, run_key = _run_times(home, wall0)
    return ChangeTiming(created - wall0, started - wall0, consuming, run_key.split(":")[0])


def measure(settings: Settings, root: Path) -> list[ChangeTiming]:
    """Start the daemon, wait for its first deploy, then time :data:`CHANGES` config changes."""
    runtime = runtime_for(settings)
    with running_daemon(root, settings) as home:
        log = root / "daemon.log"
        t0 = time.perf_counter()
        _wait(lambda: _records_in(runtime) > 0, 300, "the daemon's first deploy consuming", log)
        print(
            f"  [docker] daemon: first deploy consuming after {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        timings = []
        try:
            for i in range(CHANGES):
                time.sleep(3.0 + 2.3 * i)  # a different phase of the sensor's interval each time
                timing = one_change(settings, home, runtime, BAR_VOLUMES[i % 2])
                print(
                    f"  [docker] change {i + 1}: run requested {timing.requested_s:.1f} s, started "
                    f"{timing.started_s:.1f} s, new container consuming {timing.consuming_s:.1f} s "
                    f"({timing.sensor} sensor)",
                    file=sys.stderr,
                    flush=True,
                )
                timings.append(timing)
        finally:
            runtime.stop(BARS_PIPELINE, timeout=30)
        return timings
