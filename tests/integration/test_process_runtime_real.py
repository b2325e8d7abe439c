"""The local process runtime driving real processes: a small pipeline-like script in tmp_path.

No Kafka is needed. Every fixture stops what it started, and the tests check that stopped
pipelines leave no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradesignals_dagster.cli import main
from tradesignals_dagster.deploy.errors import DeployError, PipelineStartError
from tradesignals_dagster.deploy.process import STATE_FILE, ProcessRuntime
from tradesignals_dagster.deploy.runtime import DesiredState
from tradesignals_dagster.stack.process import pid_alive, wait_until

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time

    def on_term(signum, frame):
        print("got SIGTERM, exiting", flush=True)
        sys.exit(int(os.environ.get("STOP_CODE", "0")))

    signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE_TERM") else on_term)
    secret = "yes" if os.environ.get("TS_TEST_SECRET") else "no"
    print(f"hello pid={os.getpid()} secret={secret} pipeline={os.environ.get('TRADESIGNALS_PIPELINE')}", flush=True)
    if "CRASH" in os.environ:
        print("boom: bad config", file=sys.stderr, flush=True)
        sys.exit(int(os.environ["CRASH"]))
    pad = "x" * int(os.environ.get("CHATTY", "0"))
    i = 0
    while True:
        print(f"tick {i} {pad}", flush=True)
        i += 1
        time.sleep(0.01 if pad else 0.1)
    """
)


def _desired(workdir: Path, version: str = "1", key: str = "demo", **env: str) -> DesiredState:
    return DesiredState(
        key=key,
        command=(sys.executable, "app.py"),
        env={"TRADESIGNALS_PIPELINE": key, **env},
        config_hash=f"config-{version}",
        code_version="code",
        workdir=str(workdir),
    )


def _stop_everything(runtime: ProcessRuntime) -> None:
    """Stop every pipeline the runtime knows and check that none of their processes is left."""
    pids: list[int] = []
    for status in runtime.list():
        pids += [int(p) for p in (status.extra.get("pid"), status.extra.get("child_pid")) if p]
        runtime.stop(status.key, timeout=5)
    for pid in pids:
        if not wait_until(lambda pid=pid: not pid_alive(pid), 10, interval=0.05):  # type: ignore[misc]
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"process {pid} was left running")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "app.py").write_text(SCRIPT)
    return folder


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "state", startup_wait=0.8, stop_timeout=10)
    try:
        yield rt
    finally:
        _stop_everything(rt)


def _child(status: Any) -> int:
    return int(status.extra["child_pid"])


def test_deploy_is_a_no_op_for_the_same_version_and_restarts_for_another(
    runtime: ProcessRuntime, app_dir: Path
) -> None:
    first = runtime.deploy(_desired(app_dir))
    assert first.state == "running" and first.extra["action"] == "started"
    assert first.runtime_id and pid_alive(int(first.runtime_id)) and pid_alive(_child(first))
    assert first.restarts == 0

    again = runtime.deploy(_desired(app_dir))
    assert again.extra["action"] == "unchanged"
    assert (again.runtime_id, _child(again)) == (first.runtime_id, _child(first))

    newer = runtime.deploy(_desired(app_dir, version="2"))
    assert newer.extra["action"] == "restarted"
    assert newer.runtime_id != first.runtime_id and _child(newer) != _child(first)
    assert newer.version == _desired(app_dir, version="2").version and newer.restarts == 1
    assert not pid_alive(_child(first)) and not pid_alive(int(first.runtime_id))
    assert "got SIGTERM, exiting" in runtime.logs("demo", 200)

    forced = runtime.deploy(_desired(app_dir, version="2"), force=True)
    assert forced.extra["action"] == "restarted" and forced.restarts == 2


def test_stop_is_graceful_and_reads_stopped(runtime: ProcessRuntime, app_dir: Path) -> None:
    started = runtime.deploy(_desired(app_dir, STOP_CODE="0"))
    assert runtime.stop("demo") is True
    status = runtime.status("demo")
    assert (status.state, status.exit_code, status.runtime_id) == ("stopped", 0, None)
    assert not pid_alive(_child(started))
    assert "got SIGTERM, exiting" in runtime.logs("demo")
    assert runtime.stop("demo") is False
    assert runtime.crash_history("demo") == []


def test_kill_9_reads_crashed_with_the_exit_code_and_log_tail(runtime: ProcessRuntime, app_dir: Path) -> None:
    started = runtime.deploy(_desired(app_dir))
    os.kill(_child(started), signal.SIGKILL)
    assert wait_until(lambda: runtime.status("demo").state == "crashed", 10, interval=0.05)
    status = runtime.status("demo")
    assert status.exit_code == -9
    assert "killed by SIGKILL" in status.detail and "tick" in status.detail
    history = runtime.crash_history("demo")
    assert len(history) == 1 and history[0].exit_code == -9

    back = runtime.deploy(_desired(app_dir))
    assert back.extra["action"] == "started" and back.restarts == 1
    assert len(runtime.crash_history("demo")) == 1  # the same crash is not counted twice


def test_a_killed_supervisor_takes_the_pipeline_with_it(runtime: ProcessRuntime, app_dir: Path) -> None:
    started = runtime.deploy(_desired(app_dir))
    assert started.runtime_id
    os.kill(int(started.runtime_id), signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(_child(started)), 10, interval=0.05)
    status = runtime.status("demo")
    assert status.state == "crashed" and status.exit_code is None
    assert "supervisor died" in status.detail


def test_sigterm_from_outside_is_a_crash_with_the_reason(runtime: ProcessRuntime, app_dir: Path) -> None:
    started = runtime.deploy(_desired(app_dir))
    assert started.runtime_id
    os.kill(int(started.runtime_id), signal.SIGTERM)
    assert wait_until(lambda: runtime.status("demo").state == "crashed", 10, interval=0.05)
    status = runtime.status("demo")
    assert status.exit_code == 0 and "SIGTERM sent from outside the runtime" in status.detail


def test_a_crash_during_start_up_raises_with_the_log_tail(runtime: ProcessRuntime, app_dir: Path) -> None:
    with pytest.raises(PipelineStartError) as info:
        runtime.deploy(_desired(app_dir, CRASH="3"))
    assert info.value.process_exit_code == 3
    assert "boom: bad config" in str(info.value)
    status = runtime.status("demo")
    assert (status.state, status.exit_code) == ("crashed", 3)
    assert [c.exit_code for c in runtime.crash_history("demo")] == [3]


def test_stop_escalates_to_sigkill(runtime: ProcessRuntime, app_dir: Path) -> None:
    started = runtime.deploy(_desired(app_dir, IGNORE_TERM="1"))
    begun = time.monotonic()
    assert runtime.stop("demo", timeout=1.0) is True
    assert time.monotonic() - begun < 8
    assert not pid_alive(_child(started))
    assert runtime.status("demo").state == "stopped"


def test_secrets_stay_in_the_environment_not_the_state_file(
    runtime: ProcessRuntime, app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TS_TEST_SECRET", "hunter2-value")
    runtime.deploy(_desired(app_dir, TRADESIGNALS_SASL_PASSWORD="pw-value"))
    assert "hello pid=" in runtime.logs("demo") and "secret=yes pipeline=demo" in runtime.logs("demo")
    state_text = (runtime.pipeline_dir("demo") / STATE_FILE).read_text()
    assert "hunter2-value" not in state_text and "pw-value" not in state_text
    assert json.loads(state_text)["env_keys"] == ["TRADESIGNALS_PIPELINE", "TRADESIGNALS_SASL_PASSWORD"]


def test_logs_rotate_and_follow(tmp_path: Path, app_dir: Path) -> None:
    rt = ProcessRuntime(tmp_path / "state", startup_wait=0.5, log_max_bytes=20_000, log_backups=2)
    try:
        rt.deploy(_desired(app_dir, CHATTY="500"))
        rotated = rt.pipeline_dir("demo") / "pipeline.log.2"
        assert wait_until(rotated.is_file, 20, interval=0.05)
        assert (rt.pipeline_dir("demo") / "pipeline.log").stat().st_size <= 20_000 + 65_536
        assert not (rt.pipeline_dir("demo") / "pipeline.log.3").exists()
        assert len(rt.logs("demo", 5).splitlines()) == 5
        deadline = time.monotonic() + 10
        seen = ""
        for chunk in rt.follow_logs("demo", poll=0.05, should_stop=lambda: time.monotonic() > deadline):
            seen += chunk
            if seen.count("tick") >= 3:
                break
        assert seen.count("tick") >= 3
    finally:
        _stop_everything(rt)


def test_a_missing_working_directory_is_refused(runtime: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="does not exist"):
        runtime.deploy(_desired(tmp_path / "nowhere"))


# --- the CLI -----------------------------------------------------------------------------------

REGISTRY = """
StreamingApplication:
  id: demo
  Topics:
    ticks: {num_partitions: 1, replication_factor: 1, min_insync_replicas: 1, value_serializer: json}
  Pipelines:
    alpha:
      input: {type: synthetic}
      output: {type: kafka, topic_id: ticks}
    beta:
      input: {type: synthetic}
      output: {type: kafka, topic_id: ticks}
    broken:
      input: {type: synthetic}
      output: {type: kafka, topic_id: ticks}
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[list[str]]:
    """A registry with three pipelines (``broken`` exits at once); yields the CLI's options."""
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "pipelines.yaml").write_text(REGISTRY)
    for key in ("alpha", "beta", "broken"):
        (tmp_path / "pipelines" / key).mkdir(parents=True)
        text = SCRIPT if key != "broken" else "import sys\nprint('boom: broken on purpose')\nsys.exit(4)\n"
        # validate requires an app.py to define build(); these stand-ins run as plain scripts
        stub = "def build(ctx):\n    raise NotImplementedError\n\n"
        (tmp_path / "pipelines" / key / "app.py").write_text(stub + text)
    opts = ["--registry", str(tmp_path / "registry"), "--pipelines", str(tmp_path / "pipelines")]
    opts += ["--state-dir", str(tmp_path / "state")]
    try:
        yield opts
    finally:
        _stop_everything(ProcessRuntime(tmp_path / "state"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_start_status_restart_logs_stop(project: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "pipelines", "start", "alpha", "beta", "--no-apply", *project)
    assert code == 0 and "alpha: started" in out and "beta: started" in out

    code, out, _ = _run(capsys, "pipelines", "start", "alpha", "--no-apply", *project)
    assert code == 0 and "alpha: already running" in out

    code, out, _ = _run(capsys, "pipelines", "status", *project)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PIPELINE", "STATE", "PID", "VERSION", "UPTIME", "RESTARTS"]
    assert lines[1].split()[:2] == ["alpha", "running"] and lines[3].split()[:2] == ["broken", "missing"]

    code, out, _ = _run(capsys, "pipelines", "restart", "beta", "--no-apply", *project)
    assert code == 0 and "beta: restarted" in out

    code, out, _ = _run(capsys, "pipelines", "status", "--json", *project)
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["beta"]["restarts"] == 1 and rows["beta"]["pid"] and not rows["beta"]["outdated"]
    assert rows["alpha"]["version"] == rows["alpha"]["desired_version"]

    code, out, _ = _run(capsys, "pipelines", "logs", "alpha", "-n", "2", *project)
    assert code == 0 and len(out.splitlines()) == 2 and "tick" in out

    code, out, _ = _run(capsys, "pipelines", "stop", "alpha", *project)
    assert code == 0 and "alpha: stopped" in out
    code, out, _ = _run(capsys, "pipelines", "stop", *project)
    assert "alpha: was not running" in out and "beta: stopped" in out
    code, out, _ = _run(capsys, "pipelines", "status", "--json", *project)
    assert {r["id"]: r["state"] for r in json.loads(out)} == {
        "alpha": "stopped",
        "beta": "stopped",
        "broken": "missing",
    }


def test_cli_reports_a_broken_pipeline(project: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "pipelines", "start", "broken", "--no-apply", *project)
    assert code == 1 and "boom: broken on purpose" in err and "with 4" in err
    code, out, _ = _run(capsys, "pipelines", "status", *project)
    assert code == 1 and "crashed (4)" in out
    code, out, _ = _run(capsys, "pipelines", "stop", "broken", *project)
    assert "broken: was not running" in out
    code, _, _ = _run(capsys, "pipelines", "status", *project)
    assert code == 0


def test_cli_usage_errors(project: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "pipelines", "start", "nope", "--no-apply", *project)
    assert code == 2 and "no pipeline or sink 'nope'" in err and "alpha" in err
    code, _, err = _run(capsys, "pipelines", "logs", "alpha", *project)
    assert code == 2 and "never been started" in err
