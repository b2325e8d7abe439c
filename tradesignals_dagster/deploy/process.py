"""The local process runtime: each pipeline a supervised, detached process on this machine.

Layout, per pipeline, under ``<state_dir>/pipelines/<key>/``:

* ``state.json`` - written by the runtime: what should run (``intent``), the supervisor's pid
  with its start time and boot id (the pid-reuse guard), version, config hash, code version,
  command, the *names* of the environment variables set (never their values: secrets stay in
  the process environment), start counts, restarts, last exit code and recent crashes;
* ``run.json`` - written by the supervisor (:mod:`tradesignals_dagster.deploy.supervisor`):
  child pid, exit code, signal, end time;
* ``pipeline.log`` (+ ``.1`` ... rotated copies) - the pipeline's stdout and stderr.

States: *running* (the recorded supervisor is alive and is the same process), *stopped*
(stopped with :meth:`ProcessRuntime.stop`), *crashed* (meant to run but gone - exit code and
log tail in ``detail``), *missing* (never deployed). ``restarts`` counts every start after
the first. Each crash is recorded once (by whichever of status/deploy/stop sees it first) in
``crashes``, which :meth:`ProcessRuntime.crash_history` returns so a health sensor can back
off and spot crash loops.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradesignals_dagster.deploy import supervisor
from tradesignals_dagster.deploy.errors import DeployError, PipelineStartError, UnknownPipelineError
from tradesignals_dagster.deploy.runtime import DesiredState, RunState, RuntimeStatus
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.process import (
    boot_id,
    file_lock,
    pid_alive,
    pid_matches,
    pid_start_time,
    read_json,
    start_detached,
    wait_until,
    write_json,
)

STATE_FILE = "state.json"
LOCK_FILE = ".lock"
MAX_CRASHES = 50
SUPERVISOR_MODULE = "tradesignals_dagster.deploy.supervisor"
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_DROP_ENV_PREFIXES = ("PYTEST_",)
_DROP_ENV_KEYS = frozenset({"PYTHONINSPECT"})


@dataclass(frozen=True)
class Crash:
    """One observed crash: when, with what exit code (None: unknown), of which run."""

    at: float
    exit_code: int | None
    run_id: str
    detail: str = ""


def same_process(pid: int | None, start: int | None, boot: str | None = None) -> bool:
    """Whether ``pid`` is alive and still the process recorded with start time ``start``.

    A recycled pid has another start time (or, after a reboot, another boot id). Where
    /proc is unavailable the command line check of :func:`pid_matches` is used instead.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    current_boot = boot_id()
    if boot and current_boot and boot != current_boot:
        return False
    now = pid_start_time(pid)
    if start is None or now is None:
        return pid_matches(pid, SUPERVISOR_MODULE)
    return now == start


def needs_restart(running_version: str | None, desired: DesiredState, force: bool = False) -> bool:
    """Whether a running pipeline at ``running_version`` must restart to become ``desired``."""
    return force or running_version != desired.version


def child_env(base: Mapping[str, str], desired: DesiredState) -> dict[str, str]:
    """The pipeline's environment: ``base`` (secrets included) less test/debug leftovers,
    then ``desired.env``; output unbuffered so the log shows lines as they are printed."""
    env = {k: v for k, v in base.items() if not k.startswith(_DROP_ENV_PREFIXES) and k not in _DROP_ENV_KEYS}
    env.update(desired.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def new_state(
    desired: DesiredState, previous: Mapping[str, Any], run_id: str, pid: int, now: float
) -> dict[str, Any]:
    """The state of a fresh start, carrying counters and crash history over from ``previous``."""
    starts = int(previous.get("starts", 0))
    return {
        "key": desired.key,
        "intent": "running",
        "run_id": run_id,
        "pid": pid,
        "pid_start": pid_start_time(pid),
        "boot_id": boot_id(),
        "version": desired.version,
        "config_hash": desired.config_hash,
        "code_version": desired.code_version,
        "command": list(desired.command),
        "workdir": desired.workdir,
        "env_keys": sorted(desired.env),
        "started_at": now,
        "stopped_at": None,
        "starts": starts + 1,
        "restarts": int(previous.get("restarts", 0)) + (1 if starts else 0),
        "last_exit_code": previous.get("last_exit_code"),
        "crashes": list(previous.get("crashes", [])),
    }


def describe_exit(code: int | None, forwarded: list[str] | None = None) -> str:
    """A sentence about how a pipeline ended, for ``detail``."""
    if code is None:
        return "the supervisor died without recording an exit (killed with SIGKILL, or the machine restarted)"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    if forwarded:
        return f"exited with code {code} after {', '.join(forwarded)} sent from outside the runtime"
    if code == 0:
        return "exited on its own with code 0 (a streaming pipeline should keep running)"
    return f"exited with code {code}"


def classify(
    state: Mapping[str, Any], run: Mapping[str, Any], alive: bool
) -> tuple[RunState, int | None, str]:
    """The run state, exit code and a one-line reason, from the two state files."""
    if not state:
        return "missing", None, "never deployed"
    if alive:
        return "running", None, ""
    if state.get("intent") == "stopped":
        return "stopped", state.get("last_exit_code"), "stopped on purpose"
    ended = run if run.get("run_id") == state.get("run_id") else {}
    code = ended.get("exit_code")
    return "crashed", code, describe_exit(code, ended.get("forwarded"))


def record_crash(state: dict[str, Any], run: Mapping[str, Any], now: float) -> bool:
    """Add the crash of ``state``'s current run to its history, once; True if it was new."""
    run_id = str(state.get("run_id", ""))
    crashes = state.setdefault("crashes", [])
    if any(c.get("run_id") == run_id for c in crashes):
        return False
    ended = run if run.get("run_id") == run_id else {}
    code = ended.get("exit_code")
    crashes.append(
        {
            "at": ended.get("ended_at") or now,
            "exit_code": code,
            "run_id": run_id,
            "detail": describe_exit(code, ended.get("forwarded")),
        }
    )
    del crashes[:-MAX_CRASHES]
    state["last_exit_code"] = code
    return True


class ProcessRuntime:
    """Runs pipelines as supervised detached processes; see the module doc for the layout."""

    name = "process"

    def __init__(
        self,
        state_dir: Path | str,
        *,
        startup_wait: float = 1.5,
        stop_timeout: float = 30.0,
        log_max_bytes: int = supervisor.DEFAULT_MAX_BYTES,
        log_backups: int = supervisor.DEFAULT_BACKUPS,
    ) -> None:
        self.root = Path(state_dir).resolve() / "pipelines"
        self.startup_wait = startup_wait
        self.stop_timeout = stop_timeout
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessRuntime:
        """The runtime keeping its state under ``settings.state_dir``."""
        return cls(settings.state_dir)

    def pipeline_dir(self, key: str) -> Path:
        """Where pipeline ``key``'s state and logs live."""
        if not _KEY.match(key):
            raise UnknownPipelineError(f"'{key}' is not a valid pipeline id")
        return self.root / key

    def log_path(self, key: str) -> Path:
        """The pipeline's current log file."""
        return self.pipeline_dir(key) / supervisor.LOG_FILE

    def _read(self, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        folder = self.pipeline_dir(key)
        return read_json(folder / STATE_FILE), supervisor.read_run(folder)

    def _write(self, key: str, state: dict[str, Any]) -> None:
        write_json(self.pipeline_dir(key) / STATE_FILE, state)

    @staticmethod
    def _alive(state: Mapping[str, Any]) -> bool:
        return bool(state) and same_process(state.get("pid"), state.get("pid_start"), state.get("boot_id"))

    def deploy(self, desired: DesiredState, force: bool = False) -> RuntimeStatus:
        """Start ``desired``, restart it when its version differs (or ``force``), else no-op.

        Raises :class:`PipelineStartError` with the log tail when the process exits within
        ``startup_wait`` seconds of starting.
        """
        key = desired.key
        with file_lock(self.pipeline_dir(key) / LOCK_FILE):
            state, run = self._read(key)
            alive = self._alive(state)
            if alive and not needs_restart(state.get("version"), desired, force):
                return self._status(key, state, run, alive, action="unchanged")
            if (
                state
                and not alive
                and state.get("intent") == "running"
                and record_crash(state, run, time.time())
            ):
                self._write(key, state)
            if alive:
                self._terminate(key, state, self.stop_timeout)
            else:
                self._kill_orphan(run)
            self._start(desired, state)
            state, run = self._read(key)
            return self._status(key, state, run, True, action="restarted" if alive else "started")

    def _start(self, desired: DesiredState, previous: dict[str, Any]) -> dict[str, Any]:
        key = desired.key
        folder = self.pipeline_dir(key)
        workdir = Path(desired.workdir) if desired.workdir else None
        if workdir is not None and not workdir.is_dir():
            raise DeployError(f"pipeline '{key}': working directory {workdir} does not exist")
        (folder / supervisor.RUN_FILE).unlink(missing_ok=True)
        run_id = uuid.uuid4().hex[:12]
        argv = [
            *(sys.executable, "-P", "-m", SUPERVISOR_MODULE),
            *("--run-dir", str(folder), "--run-id", run_id),
            *("--max-bytes", str(self.log_max_bytes), "--backups", str(self.log_backups)),
            "--",
            *desired.command,
        ]
        pid = start_detached(
            argv, folder / supervisor.LOG_FILE, cwd=workdir, env=child_env(os.environ, desired)
        )
        state = new_state(desired, previous, run_id, pid, time.time())
        self._write(key, state)

        def ended() -> bool:
            return not pid_alive(pid) or "exit_code" in supervisor.read_run(folder)

        if wait_until(ended, self.startup_wait, interval=0.1):
            wait_until(lambda: not pid_alive(pid), 5.0, interval=0.05)
            run = supervisor.read_run(folder)
            record_crash(state, run, time.time())
            self._write(key, state)
            raise PipelineStartError(key, run.get("exit_code"), self.logs(key, 30), str(self.log_path(key)))
        return state

    def _terminate(self, key: str, state: dict[str, Any], timeout: float) -> None:
        """SIGTERM the supervisor (it forwards to the pipeline); SIGKILL the group on timeout."""
        pid = int(state["pid"])
        state.update(intent="stopped", stopped_at=time.time())
        self._write(key, state)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(pid), timeout, interval=0.1):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 10.0, interval=0.05)
        run = supervisor.read_run(self.pipeline_dir(key))
        self._kill_orphan(run)
        if run.get("run_id") == state.get("run_id"):
            state["last_exit_code"] = run.get("exit_code")
        self._write(key, state)

    @staticmethod
    def _kill_orphan(run: Mapping[str, Any], timeout: float = 10.0) -> None:
        """Stop a pipeline left running by a supervisor that was killed (no PDEATHSIG)."""
        child = run.get("child_pid")
        if "exit_code" in run or not same_process(child, run.get("child_start")):
            return
        assert isinstance(child, int)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(child), timeout, interval=0.1):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

    def stop(self, key: str, timeout: float | None = None) -> bool:
        """Stop the pipeline gracefully; False if it was not running. It then reads *stopped*."""
        with file_lock(self.pipeline_dir(key) / LOCK_FILE):
            state, run = self._read(key)
            if not state:
                return False
            if not self._alive(state):
                if state.get("intent") == "running":
                    record_crash(state, run, time.time())
                self._kill_orphan(run)
                state.update(intent="stopped", stopped_at=state.get("stopped_at") or time.time())
                self._write(key, state)
                return False
            self._terminate(key, state, self.stop_timeout if timeout is None else timeout)
            return True

    def status(self, key: str) -> RuntimeStatus:
        """The pipeline's state; a crash seen for the first time is recorded in its history."""
        state, run = self._read(key)
        alive = self._alive(state)
        if state and not alive and state.get("intent") == "running":
            with file_lock(self.pipeline_dir(key) / LOCK_FILE, blocking=False) as held:
                if held:  # otherwise a deploy or stop is busy with it and records it
                    state, run = self._read(key)
                    if state.get("intent") == "running" and record_crash(state, run, time.time()):
                        self._write(key, state)
        return self._status(key, state, run, alive)

    def _status(
        self, key: str, state: Mapping[str, Any], run: Mapping[str, Any], alive: bool, action: str = ""
    ) -> RuntimeStatus:
        run_state, code, detail = classify(state, run, alive)
        if not state:
            return RuntimeStatus(key=key, state="missing", runtime=self.name, detail=detail)
        if run_state == "crashed":
            detail = f"{detail}\n{self.logs(key, 20)}".rstrip()
        same_run = run.get("run_id") == state.get("run_id")
        extra = {
            "pid": str(state.get("pid", "")),
            "child_pid": str(run.get("child_pid", "")) if same_run else "",
            "config_hash": str(state.get("config_hash", "")),
            "code_version": str(state.get("code_version", "")),
            "log": str(self.log_path(key)),
            "crashes_last_hour": str(
                sum(1 for c in state.get("crashes", []) if c["at"] > time.time() - 3600)
            ),
        }
        if action:
            extra["action"] = action
        return RuntimeStatus(
            key=key,
            state=run_state,
            runtime=self.name,
            runtime_id=str(state.get("pid")) if run_state == "running" else None,
            version=state.get("version"),
            started_at=state.get("started_at"),
            restarts=int(state.get("restarts", 0)),
            exit_code=code,
            detail=detail,
            extra=extra,
        )

    def list(self) -> list[RuntimeStatus]:
        """Every pipeline with state under this runtime's directory, by id."""
        if not self.root.is_dir():
            return []
        keys = sorted(
            p.name for p in self.root.iterdir() if (p / STATE_FILE).is_file() and _KEY.match(p.name)
        )
        return [self.status(k) for k in keys]

    def logs(self, key: str, lines: int = 100) -> str:
        """The last ``lines`` lines of the pipeline's output ('' if it never ran)."""
        return supervisor.tail_lines(self.log_path(key), lines)

    def follow_logs(
        self, key: str, poll: float = 0.5, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[str]:
        """Output appended from now on (``logs -f``), across rotations."""
        return supervisor.follow(self.log_path(key), poll=poll, should_stop=should_stop)

    def metrics(self, key: str) -> dict[str, float]:
        """The pipeline's metrics endpoint (port in its ``metrics.port`` file), scraped now."""
        from tradesignals_dagster.control.inspect import pipeline_metrics

        return pipeline_metrics(self.root.parent, key)

    def crash_history(self, key: str, since: float | None = None) -> builtins.list[Crash]:
        """Recorded crashes of ``key``, oldest first (the last :data:`MAX_CRASHES`), optionally
        only those at or after ``since`` (epoch seconds)."""
        self.status(key)  # records a crash not seen yet
        state = read_json(self.pipeline_dir(key) / STATE_FILE)
        crashes = [
            Crash(float(c["at"]), c.get("exit_code"), str(c.get("run_id", "")), str(c.get("detail", "")))
            for c in state.get("crashes", [])
        ]
        return [c for c in crashes if since is None or c.at >= since]
