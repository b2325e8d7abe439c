"""Drill: restart the Dagster daemon mid-run (issue 10, item 3).

A real ``dagster-daemon run`` (its own DAGSTER_HOME, a workspace loading
``tradesignals_dagster.definitions`` for a small registry of two cheap pipelines on the session
stack) deploys the pipelines through the ``pipeline_redeploy`` sensor. Once both run, the daemon
(and the code server it started) is SIGKILLed right after a sensor tick and started again. The
drill then proves from the instance's own records that the sensors resumed from their cursors
(ticks continue, the first tick after the restart yields the cursor the last one before it left),
that no pipeline was redeployed (one deploy run each, same pipeline pids), and that the resumed
redeploy sensor still works: a changed config.yaml gets exactly one redeploy run.

Sensor intervals are the product's defaults (redeploy 5 s, health 15 s), so the drill takes a
few minutes. It prints one ``drill measured:`` line and asserts its figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType, TickStatus
from test_dagster_sensors import APP_PY  # the stand-in pipeline process: records pid, config

from tradesignals_dagster.deploy.process import ProcessRuntime

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]

SENSORS = ("pipeline_redeploy", "pipeline_health")
PIPELINE_TAG = "tradesignals/pipeline"
DAGSTER_BIN = Path(sys.executable).parent
INSTANCE_YAML = Path(__file__).resolve().parents[2] / "tradesignals_dagster" / "dev_instance.yaml"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, daemon: Daemon | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` (and the daemon's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None:
            daemon.check_alive()
        value = probe()
        if value:
            return value
        time.sleep(1.0)
    log = daemon.log_tail() if daemon is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log}")


@dataclass
class Project:
    root: Path
    registry: Path
    pipelines: Path
    state: Path
    home: Path
    workspace: Path
    keys: tuple[str, str]
    env: dict[str, str]


@pytest.fixture
def project(stack: Any, tmp_path: Path) -> Project:
    """A copy of a small registry (two cheap pipelines, topics named from a uuid) with a
    DAGSTER_HOME and workspace of its own, and the environment pointing at the stack."""
    prefix = f"dr{uuid.uuid4().hex[:8]}"
    reg, pipes, state, home = (tmp_path / n for n in ("registry", "pipelines", "state", "dagster_home"))
    for d in (reg, pipes, state, home):
        d.mkdir()
    keys = (f"{prefix}_a", f"{prefix}_b")
    topic = {
        "num_partitions": 1,
        "replication_factor": 1,
        "min_insync_replicas": 1,
        "value_serializer": "json",
    }
    topics = {f"{prefix}_in": topic, f"{prefix}_out_a": topic, f"{prefix}_out_b": topic}
    pipelines = {
        key: {
            "input": {"type": "kafka", "kafka_topic_id": f"{prefix}_in"},
            "output": {"topic_id": f"{prefix}_out_{key[-1]}"},
        }
        for key in keys
    }
    app = {"StreamingApplication": {"id": prefix, "Topics": topics, "Pipelines": pipelines}}
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(app))
    for key in keys:
        (pipes / key).mkdir()
        (pipes / key / "app.py").write_text(APP_PY)
        (pipes / key / "config.yaml").write_text("bar_volume: 100\n")
    (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "tradesignals_dagster.definitions",
                            "location_name": "tradesignals",
                        }
                    }
                ]
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADESIGNALS_", "DAGSTER_"))}
    env.update(
        {
            "VIRTUAL_ENV": sys.prefix,
            "DAGSTER_HOME": str(home),
            "TRADESIGNALS_REGISTRY": str(reg),
            "TRADESIGNALS_PIPELINES_DIR": str(pipes),
            "TRADESIGNALS_STATE_DIR": str(state),
            "TRADESIGNALS_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
            "TRADESIGNALS_SCHEMA_REGISTRY_URL": stack.schema_registry_url,
            "TRADESIGNALS_CLICKHOUSE_URL": str(stack.info.get("clickhouse_url") or ""),
        }
    )
    if not env["TRADESIGNALS_CLICKHOUSE_URL"]:
        del env["TRADESIGNALS_CLICKHOUSE_URL"]
    return Project(tmp_path, reg, pipes, state, home, workspace, keys, env)


class Daemon:
    """A ``dagster-daemon run`` process in a session of its own (its code server included)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = project.root / "daemon.log"
        self.starts = 0
        self.orphans: list[int] = []

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== daemon start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(DAGSTER_BIN / "dagster-daemon"), "run", "-w", str(self.project.workspace)],
                cwd=self.project.root,
                env=self.project.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dagster-daemon exited with {self.proc.returncode}\n{self.log_tail()}")

    def kill(self, group: bool = True) -> None:
        """SIGKILL the daemon as a crash would: its whole process group (daemon and code
        server), or with ``group=False`` the daemon process alone (its code server, and any run
        it is executing, live on as orphans; teardown still ends them)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.orphans.append(self.proc.pid)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL, the daemon's process group (and any orphaned one)."""
        for pgid in self.orphans:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@pytest.fixture
def daemon(project: Project) -> Iterator[Daemon]:
    """The daemon for ``project``; teardown stops it and every pipeline process, even on failure."""
    d = Daemon(project)
    try:
        yield d
    finally:
        d.stop()
        runtime = ProcessRuntime(project.state)
        for status in runtime.list():
            with contextlib.suppress(Exception):
                runtime.stop(status.key, timeout=10)


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> list[InstigatorTick]:
    """Every tick the instance holds for the sensor, oldest first."""
    states = [
        s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR) if s.name == name
    ]
    ticks: list[InstigatorTick] = []
    for state in states:
        ticks.extend(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return sorted(ticks, key=lambda t: t.timestamp)


def finished_ticks(
    instance: dg.DagsterInstance, name: str, exclude: frozenset[int] = frozenset()
) -> list[InstigatorTick]:
    """The sensor's completed ticks, oldest first, without the ticks in ``exclude``.

    A tick the killed daemon was evaluating stays STARTED; the restarted daemon moves such a
    dangling tick into SKIPPED (Dagster's sensor daemon does so when it has no runs left to
    request), so it then looks finished although no daemon evaluated it to the end: callers
    pass its id in ``exclude``.
    """
    done = [t for t in sensor_ticks(instance, name) if t.status in (TickStatus.SUCCESS, TickStatus.SKIPPED)]
    return [t for t in done if t.tick_id not in exclude]


def sensor_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    """The cursor the instance keeps for the sensor (what the next tick starts from)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.name == name and state.instigator_data is not None:
            return state.instigator_data.cursor  # type: ignore[union-attr]
    return None


def runs_for(instance: dg.DagsterInstance, key: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={PIPELINE_TAG: key})))


def all_runs_succeeded(instance: dg.DagsterInstance, keys: tuple[str, ...], count: dict[str, int]) -> bool:
    for key in keys:
        runs = runs_for(instance, key)
        if len(runs) < count[key]:
            return False
        bad = [r for r in runs if r.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
        assert not bad, f"run(s) for {key} failed: {[(r.run_id, r.status) for r in bad]}"
        if any(r.status != dg.DagsterRunStatus.SUCCESS for r in runs):
            return False
    return True


def pipeline_pids(runtime: ProcessRuntime, keys: tuple[str, ...]) -> dict[str, int] | None:
    pids = {}
    for key in keys:
        status = runtime.status(key)
        if status.state != "running" or "child_pid" not in status.extra:
            return None
        pids[key] = int(status.extra["child_pid"])
    return pids


def test_daemon_restart_resumes_sensors_from_their_cursors_without_redeploying(
    project: Project, daemon: Daemon
) -> None:
    keys = project.keys
    runtime = ProcessRuntime(project.state)
    instance = dg.DagsterInstance.from_config(str(project.home))
    t0 = time.monotonic()
    try:
        daemon.start()
        # 1. the redeploy sensor deploys both pipelines through runs the daemon launches
        wait_for(
            "one successful deploy run per pipeline",
            lambda: all_runs_succeeded(instance, keys, dict.fromkeys(keys, 1)),
            300,
            daemon,
        )
        pids_before = wait_for("both pipelines running", lambda: pipeline_pids(runtime, keys), 60, daemon)
        deploy_s = time.monotonic() - t0

        # 2. at least one tick of each sensor after the deploy, then SIGKILL right after a tick
        settled = {n: len(finished_ticks(instance, n)) for n in SENSORS}
        wait_for(
            "a tick of each sensor after the deploy",
            lambda: all(len(finished_ticks(instance, n)) > settled[n] for n in SENSORS),
            120,
            daemon,
        )
        last = len(finished_ticks(instance, "pipeline_redeploy"))
        wait_for(
            "a fresh redeploy tick to kill the daemon right after",
            lambda: len(finished_ticks(instance, "pipeline_redeploy")) > last,
            60,
            daemon,
        )
        killed_at = time.time()
        daemon.kill()
        # read what the dead daemon left (a tick it was evaluating stays unfinished)
        before = {n: finished_ticks(instance, n) for n in SENSORS}
        interrupted = {
            n: frozenset(t.tick_id for t in sensor_ticks(instance, n) if t.status == TickStatus.STARTED)
            for n in SENSORS
        }
        cursors_before = {n: sensor_cursor(instance, n) for n in SENSORS}
        runs_before = {k: [r.run_id for r in runs_for(instance, k)] for k in keys}

        # 3. start it again and wait for two further ticks of each sensor
        daemon.start()
        restarted_at = time.time()
        wait_for(
            "two ticks of each sensor after the restart",
            lambda: all(
                len(finished_ticks(instance, n, interrupted[n])) >= len(before[n]) + 2 for n in SENSORS
            ),
            180,
            daemon,
        )
        after = {n: finished_ticks(instance, n, interrupted[n]) for n in SENSORS}
        first_after = {n: after[n][len(before[n])] for n in SENSORS}
        downtime = {n: first_after[n].timestamp - before[n][-1].timestamp for n in SENSORS}
        runs_after = {k: [r.run_id for r in runs_for(instance, k)] for k in keys}
        pids_after = pipeline_pids(runtime, keys)

        for n in SENSORS:
            # the tick history is the same one, continued (no sensor state recreated)
            assert [t.tick_id for t in after[n][: len(before[n])]] == [t.tick_id for t in before[n]], n
            assert first_after[n].timestamp > killed_at, n
            # a steady deployment maps a cursor onto itself: the first tick after the restart
            # leaves exactly the cursor the last tick before the kill left, i.e. it started from it
            assert before[n][-1].cursor == cursors_before[n], n
            assert first_after[n].cursor == cursors_before[n], (n, first_after[n].cursor, cursors_before[n])
            assert not any(t.run_ids for t in after[n][len(before[n]) :]), f"{n} requested runs after restart"
        assert runs_after == runs_before, "a run was requested for an unchanged pipeline"
        assert all(len(v) == 1 for v in runs_after.values()), runs_after
        assert pids_after == pids_before, (pids_before, pids_after)

        # 4. the resumed redeploy sensor still works: one changed config, exactly one redeploy,
        # even when the daemon is SIGKILLed again right after the tick that requested it (its
        # cursor then holds the pending version)
        changed, unchanged = keys
        n_redeploy = len(finished_ticks(instance, "pipeline_redeploy"))
        (project.pipelines / changed / "config.yaml").write_text("bar_volume: 250\n")
        changed_at = time.monotonic()
        requesting = wait_for(
            f"the redeploy tick requesting {changed}",
            lambda: next(
                (t for t in finished_ticks(instance, "pipeline_redeploy")[n_redeploy:] if t.run_ids), None
            ),
            120,
            daemon,
        )
        pending_cursor = json.loads(requesting.cursor or "{}")
        assert set(pending_cursor) == {changed}, pending_cursor
        # Dagster writes the finished tick first and the sensor's state (its cursor) just after:
        # a probe between the two writes (seen in CI) must wait for the second one
        wait_for(
            "the sensor's state to take the requesting tick's cursor",
            lambda: sensor_cursor(instance, "pipeline_redeploy") == requesting.cursor,
            10,
            daemon,
        )
        second_kill_at = time.time()
        daemon.kill(group=False)
        daemon.start()
        second_down = time.time() - second_kill_at
        wait_for(
            f"a successful redeploy run for {changed}",
            lambda: all_runs_succeeded(instance, keys, {changed: 2, unchanged: 1}),
            180,
            daemon,
        )
        redeploy_s = time.monotonic() - changed_at
        new_pid = wait_for(
            f"{changed} running again with a new pid",
            lambda: pids_before[changed] != (p := (pipeline_pids(runtime, keys) or {}).get(changed, 0)) and p,
            60,
            daemon,
        )
        started = json.loads((project.state / f"{changed}.started.json").read_text())
        assert started == {"pid": new_pid, "config": {"bar_volume": 250}}
        # two more redeploy ticks after the second restart: the change is not requested again
        n_redeploy = len(finished_ticks(instance, "pipeline_redeploy"))
        wait_for(
            "two redeploy ticks after the redeploy",
            lambda: len(finished_ticks(instance, "pipeline_redeploy")) >= n_redeploy + 2,
            90,
            daemon,
        )
        final_runs = {k: runs_for(instance, k) for k in keys}
        final_pids = pipeline_pids(runtime, keys)
        assert len(final_runs[changed]) == 2, [r.tags for r in final_runs[changed]]
        assert "differs" in final_runs[changed][0].tags.get("tradesignals/reason", "")
        assert len(final_runs[unchanged]) == 1, [r.tags for r in final_runs[unchanged]]
        assert final_pids == {changed: new_pid, unchanged: pids_before[unchanged]}, final_pids
        later = finished_ticks(instance, "pipeline_redeploy")[n_redeploy:]
        assert not any(t.run_ids for t in later), "the redeploy was requested again"
        assert all(json.loads(t.cursor or "{}") == {} for t in later), [t.cursor for t in later]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for runs in final_runs.values() for r in runs)

        figures: dict[str, Any] = {
            "ticks_before": {n: len(before[n]) for n in SENSORS},
            "ticks_after_restart": {n: len(after[n]) - len(before[n]) for n in SENSORS},
            "runs_per_pipeline": {k: len(v) for k, v in final_runs.items()},
            "daemon_down_s": round(restarted_at - killed_at, 2),
            "second_kill_down_s": round(second_down, 2),
            "pending_cursor_at_second_kill": pending_cursor,
            "tick_gap_s": {n: round(downtime[n], 1) for n in SENSORS},
            "deploy_s": round(deploy_s, 1),
            "redeploy_after_change_s": round(redeploy_s, 1),
            "cursors": cursors_before,
            "pids_kept": pids_after == pids_before,
            "total_s": round(time.monotonic() - t0, 1),
        }
        print("drill measured:", json.dumps(figures, sort_keys=True))
        for n in SENSORS:
            assert figures["ticks_after_restart"][n] >= 2, figures
            assert figures["tick_gap_s"][n] < 120, figures
    finally:
        instance.dispose()
