"""Pure logic of the local process runtime: state files, versions, logs, the pid-reuse guard.

No pipeline processes are started here; tests/integration/test_process_runtime.py does that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tradesignals_dagster.cli_pipelines import _set_pair, _uptime
from tradesignals_dagster.deploy import supervisor
from tradesignals_dagster.deploy.errors import DeployError, PipelineStartError, UnknownPipelineError
from tradesignals_dagster.deploy.process import (
    MAX_CRASHES,
    STATE_FILE,
    ProcessRuntime,
    child_env,
    classify,
    describe_exit,
    needs_restart,
    new_state,
    record_crash,
    same_process,
)
from tradesignals_dagster.deploy.runtime import DesiredState
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.stack.process import boot_id, pid_start_time


def _desired(config: str = "c" * 64, code: str = "d" * 64, **env: str) -> DesiredState:
    return DesiredState(
        key="demo",
        command=(sys.executable, "app.py"),
        env=env or {"TRADESIGNALS_PIPELINE": "demo"},
        config_hash=config,
        code_version=code,
        workdir="/tmp",
    )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- versions and state -----------------------------------------------------------------------


def test_needs_restart_only_when_the_version_differs_or_forced() -> None:
    desired = _desired()
    assert not needs_restart(desired.version, desired)
    assert needs_restart(desired.version, desired, force=True)
    assert needs_restart(_desired(config="e" * 64).version, desired)
    assert needs_restart(None, desired)


def test_new_state_records_env_keys_never_values_and_counts_restarts() -> None:
    desired = _desired(TRADESIGNALS_SASL_PASSWORD="hunter2", TRADESIGNALS_PIPELINE="demo")
    first = new_state(desired, {}, "run1", os.getpid(), 100.0)
    assert first["env_keys"] == ["TRADESIGNALS_PIPELINE", "TRADESIGNALS_SASL_PASSWORD"]
    assert "hunter2" not in json.dumps(first)
    assert (first["starts"], first["restarts"], first["intent"]) == (1, 0, "running")
    assert first["version"] == desired.version
    assert first["pid_start"] == pid_start_time(os.getpid())
    first["crashes"] = [{"at": 1.0, "exit_code": 1, "run_id": "run0"}]
    second = new_state(desired, first, "run2", os.getpid(), 200.0)
    assert (second["starts"], second["restarts"], second["run_id"]) == (2, 1, "run2")
    assert second["crashes"] == first["crashes"]


def test_child_env_keeps_secrets_overlays_desired_and_drops_test_leftovers() -> None:
    base = {"TRADESIGNALS_SASL_PASSWORD": "s", "PYTEST_CURRENT_TEST": "x", "TRADESIGNALS_PIPELINE": "old"}
    env = child_env(base, _desired(TRADESIGNALS_PIPELINE="demo"))
    assert env["TRADESIGNALS_SASL_PASSWORD"] == "s"
    assert env["TRADESIGNALS_PIPELINE"] == "demo"
    assert "PYTEST_CURRENT_TEST" not in env
    assert env["PYTHONUNBUFFERED"] == "1"


# --- classification and crash history ---------------------------------------------------------


def test_classify_every_state() -> None:
    state = {"run_id": "r1", "intent": "running", "last_exit_code": None}
    assert classify({}, {}, False)[0] == "missing"
    assert classify(state, {}, True) == ("running", None, "")
    assert classify({**state, "intent": "stopped", "last_exit_code": 0}, {}, False) == (
        "stopped",
        0,
        "stopped on purpose",
    )
    assert classify(state, {"run_id": "r1", "exit_code": 3}, False) == ("crashed", 3, "exited with code 3")
    assert classify(state, {"run_id": "r1", "exit_code": -9}, False)[1:] == (-9, "killed by SIGKILL")
    # the record of another (older) run says nothing about this one
    stale = classify(state, {"run_id": "r0", "exit_code": 0}, False)
    assert stale[0] == "crashed" and stale[1] is None and "without recording an exit" in stale[2]


def test_describe_exit_wording() -> None:
    assert "on its own" in describe_exit(0)
    assert "SIGTERM sent from outside" in describe_exit(0, ["SIGTERM"])
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(2) == "exited with code 2"


def test_record_crash_once_per_run_and_bounded() -> None:
    state: dict[str, Any] = {"run_id": "r1"}
    assert record_crash(state, {"run_id": "r1", "exit_code": 1, "ended_at": 42.0}, now=50.0)
    assert not record_crash(state, {"run_id": "r1", "exit_code": 1}, now=60.0)
    assert state["crashes"] == [{"at": 42.0, "exit_code": 1, "run_id": "r1", "detail": "exited with code 1"}]
    assert state["last_exit_code"] == 1
    for i in range(MAX_CRASHES + 5):
        state["run_id"] = f"x{i}"
        record_crash(state, {}, now=float(i))
    assert len(state["crashes"]) == MAX_CRASHES
    assert state["crashes"][-1]["run_id"] == f"x{MAX_CRASHES + 4}"
    assert state["crashes"][-1]["exit_code"] is None


# --- the pid-reuse guard ----------------------------------------------------------------------


def test_same_process_compares_start_time_and_boot() -> None:
    me, start = os.getpid(), pid_start_time(os.getpid())
    assert start is not None
    assert same_process(me, start)
    assert same_process(me, start, boot_id())
    assert not same_process(me, start + 1)  # the pid was recycled by another process
    assert not same_process(me, start, "another-boot")
    assert not same_process(_dead_pid(), start)
    assert not same_process(None, None)


def _runtime_with_state(
    tmp_path: Path, state: dict[str, Any], run: dict[str, Any] | None = None
) -> ProcessRuntime:
    runtime = ProcessRuntime(tmp_path)
    folder = runtime.pipeline_dir("demo")
    folder.mkdir(parents=True)
    (folder / STATE_FILE).write_text(json.dumps(state))
    if run is not None:
        (folder / supervisor.RUN_FILE).write_text(json.dumps(run))
    (folder / supervisor.LOG_FILE).write_text("starting\nTraceback: boom\n")
    return runtime


def test_status_of_a_recycled_pid_is_not_running(tmp_path: Path) -> None:
    start = pid_start_time(os.getpid())
    assert start is not None
    state = {"run_id": "r1", "intent": "running", "pid": os.getpid(), "pid_start": start - 1, "version": "v"}
    status = _runtime_with_state(tmp_path, state).status("demo")
    assert status.state == "crashed"
    assert status.runtime_id is None


def test_status_records_a_crash_once_with_the_log_tail(tmp_path: Path) -> None:
    state = {"run_id": "r1", "intent": "running", "pid": _dead_pid(), "pid_start": 1, "version": "v"}
    runtime = _runtime_with_state(tmp_path, state, {"run_id": "r1", "exit_code": 2, "ended_at": 7.0})
    status = runtime.status("demo")
    assert (status.state, status.exit_code, status.version) == ("crashed", 2, "v")
    assert "exited with code 2" in status.detail and "Traceback: boom" in status.detail
    runtime.status("demo")
    history = runtime.crash_history("demo")
    assert [(c.at, c.exit_code, c.run_id) for c in history] == [(7.0, 2, "r1")]
    assert runtime.crash_history("demo", since=8.0) == []
    assert [s.key for s in runtime.list()] == ["demo"]
    # a stop of a crashed pipeline makes it "stopped" so nobody brings it back
    assert runtime.stop("demo") is False
    assert runtime.status("demo").state == "stopped"


def test_missing_and_invalid_ids(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path)
    assert runtime.status("nothing").state == "missing"
    assert runtime.list() == []
    assert runtime.logs("nothing") == ""
    assert runtime.stop("nothing") is False
    with pytest.raises(UnknownPipelineError):
        runtime.status("../etc")


def test_errors_derive_from_the_product_root() -> None:
    err = PipelineStartError("demo", 3, "boom\n", "/x/pipeline.log")
    assert isinstance(err, DeployError) and isinstance(err, TradesignalsError)
    assert err.process_exit_code == 3 and err.exit_code == 1
    assert "boom" in str(err) and "/x/pipeline.log" in str(err)
    assert UnknownPipelineError("x").exit_code == 2


# --- logs --------------------------------------------------------------------------------------


def test_rotating_log_keeps_a_bounded_number_of_copies(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.log"
    log = supervisor.RotatingLog(path, max_bytes=100, backups=2)
    for i in range(40):
        log.write(f"line {i:03d} padding\n".encode())
    log.write(b"half")
    log.line("exited")
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["pipeline.log", "pipeline.log.1", "pipeline.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    text = supervisor.tail_lines(path, 2).splitlines()
    assert text[0].endswith("half") and text[1].endswith("[supervisor] exited")


def test_rotating_log_without_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.log"
    log = supervisor.RotatingLog(path, max_bytes=10, backups=0)
    log.write(b"0123456789")
    log.write(b"abc\n")
    log.close()
    assert path.read_bytes() == b"abc\n"
    assert list(tmp_path.iterdir()) == [path]


def test_tail_reads_large_files_and_continues_into_the_rotated_copy(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.log"
    (tmp_path / "pipeline.log.1").write_text("".join(f"old {i}\n" for i in range(10)))
    path.write_text("".join(f"new {i} " + "x" * 200 + "\n" for i in range(1000)))  # > 64 KiB
    assert supervisor.tail_lines(path, 2).splitlines()[0].startswith("new 998 ")
    assert len(supervisor.tail_lines(path, 900).splitlines()) == 900
    both = supervisor.tail_lines(path, 1003).splitlines()
    assert both[:3] == ["old 7", "old 8", "old 9"] and both[3].startswith("new 0 ")
    assert supervisor.tail_lines(path, 0) == ""
    assert supervisor.tail_lines(tmp_path / "none.log", 5) == ""


def test_follow_yields_new_output_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.log"
    path.write_text("before\n")
    calls = 0

    def script() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            with path.open("a") as fh:
                fh.write("new1\n")
        elif calls == 3:
            with path.open("a") as fh:
                fh.write("late\n")
            path.rename(tmp_path / "pipeline.log.1")
            path.write_text("fresh\n")
        return calls > 6

    out = "".join(supervisor.follow(path, poll=0.01, should_stop=script))
    assert out == "new1\nlate\nfresh\n"


def test_supervisor_needs_a_command() -> None:
    with pytest.raises(SystemExit):
        supervisor.main(["--run-dir", "/tmp/x", "--run-id", "r", "--"])


# --- CLI helpers -------------------------------------------------------------------------------


def test_set_pairs_are_yaml_scalars() -> None:
    assert _set_pair("bar_volume=100") == ("bar_volume", 100)
    assert _set_pair("split_trades=true") == ("split_trades", True)
    assert _set_pair("name=abc") == ("name", "abc")
    assert _set_pair("when=2024-01-02") == ("when", __import__("datetime").date(2024, 1, 2))
    assert _set_pair("ratio=0.5") == ("ratio", 0.5)
    assert _set_pair("empty=") == ("empty", "")
    for bad in ("novalue", "=1", "x=[1, 2]", "y={a: 1}"):
        with pytest.raises(argparse.ArgumentTypeError):
            _set_pair(bad)


def test_uptime_format() -> None:
    assert _uptime(5) == "0m05s"
    assert _uptime(3725) == "1h02m"
    assert _uptime(2 * 86400 + 7200) == "2d02h"
