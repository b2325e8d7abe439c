"""The local ClickHouse endpoint as a stack service (the third beside the broker and registry).

One detached process (:mod:`tradesignals_dagster.warehouse.endpoint`) owns the chdb database
under ``<state_dir>/clickhouse/data`` and serves ClickHouse's HTTP interface on 127.0.0.1, so
the sink, Dagster runs and a user's own queries can all use it at once.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import tradesignals_dagster
from tradesignals_dagster.stack.errors import ClickHouseStartError, PortInUseError, StackError
from tradesignals_dagster.stack.process import (
    LOCALHOST,
    find_free_port,
    http_ok,
    port_in_use,
    start_detached,
    stop_pid,
    tail,
    wait_until,
    write_json,
)
from tradesignals_dagster.stack.service import LocalService

ENDPOINT_MODULE = "tradesignals_dagster.warehouse.endpoint"
PASSWORD_ENV = "TRADESIGNALS_CLICKHOUSE_PASSWORD"


class ClickHouseEndpointService(LocalService):
    """The endpoint run as a detached process; data, log and pid under ``<state_dir>/clickhouse``.

    ``port`` of None means the port used last time if still free, else a free one. ``password``
    (None: empty) is handed to the process in its environment, never on its command line.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int | None = None,
        user: str = "default",
        password: str | None = None,
        python: str | None = None,
    ) -> None:
        self.home = Path(state_dir).resolve() / "clickhouse"
        self.data_dir = self.home / "data"
        self.log_path = self.home / "endpoint.log"
        self.state_path = self.home / "endpoint.json"
        self.python = python or sys.executable
        self.user = user
        self._password = password
        self._want_port = port

    def identity(self) -> str:
        """The database directory, unique to this instance."""
        return str(self.data_dir)

    @property
    def url(self) -> str | None:
        """``http://127.0.0.1:<port>``, once started."""
        return f"http://{LOCALHOST}:{self.port}" if self.port else None

    def is_ready(self, timeout: float = 2.0) -> bool:
        """Whether ``GET /ping`` answers 200."""
        url = self.url
        return url is not None and http_ok(f"{url}/ping", timeout=timeout)

    def _choose_port(self) -> int:
        if self._want_port:
            if port_in_use(self._want_port):
                raise PortInUseError(self._want_port, "ClickHouse endpoint")
            return self._want_port
        recorded = self._state().get("port")
        if recorded and not port_in_use(int(recorded)):
            return int(recorded)
        return find_free_port()

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start the endpoint (or find it running) and wait until ``/ping`` answers.

        Idempotent like the other services. Returns :meth:`status`.
        """
        running = self.pid
        if running is not None:
            if self._want_port and self._want_port != self.port:
                raise StackError(
                    f"The ClickHouse endpoint under {self.home} already runs (pid {running}) on "
                    f"port {self.port}, not {self._want_port}; stop it first to change ports."
                )
            if not wait_until(self.is_ready, timeout, interval=0.25, pid=running):
                raise ClickHouseStartError(
                    f"The ClickHouse endpoint (pid {running}) runs but {self.url}/ping does not "
                    f"answer. Log {self.log_path}:\n{tail(self.log_path)}"
                )
            return self.status()
        if importlib.util.find_spec(ENDPOINT_MODULE) is None:
            raise ClickHouseStartError(
                f"The ClickHouse endpoint ({ENDPOINT_MODULE}) is not installed in {self.python}; "
                "reinstall the tradesignals-dagster package."
            )
        port = self._choose_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        started = time.monotonic()
        pid = start_detached(self._argv(port), self.log_path, cwd=self.home, env=self._env())
        state: dict[str, Any] = {"pid": pid, "port": port}
        write_json(self.state_path, state)
        if not wait_until(self.is_ready, timeout, interval=0.2, pid=pid):
            died = not stop_pid(pid, timeout=10.0)
            why = "its process exited" if died else f"no answer within {timeout:.0f}s"
            raise ClickHouseStartError(
                f"The ClickHouse endpoint failed to start ({why}): GET {self.url}/ping did not "
                f"answer 200. Last lines of {self.log_path}:\n{tail(self.log_path)}"
            )
        state["startup_seconds"] = round(time.monotonic() - started, 2)
        write_json(self.state_path, state)
        return self.status()

    def _argv(self, port: int) -> list[str]:
        argv = [self.python, "-m", ENDPOINT_MODULE, "--host", LOCALHOST, "--port", str(port)]
        return [*argv, "--path", str(self.data_dir), "--user", self.user]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        package_root = str(Path(tradesignals_dagster.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(PASSWORD_ENV, None)
        if self._password:
            env[PASSWORD_ENV] = self._password
        return env

    def status(self) -> dict[str, Any]:
        """Whether the endpoint runs and answers, with its pid, port, URL, log and data dir."""
        pid = self.pid
        return {
            "running": pid is not None,
            "ready": pid is not None and self.is_ready(),
            "pid": pid,
            "port": self.port,
            "url": self.url,
            "log": str(self.log_path),
            "data_dir": str(self.data_dir),
            "startup_seconds": self._state().get("startup_seconds"),
        }
