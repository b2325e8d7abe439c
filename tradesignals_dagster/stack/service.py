"""What every local stack service shares: a state file, a verified pid, its port, and stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tradesignals_dagster.stack.process import pid_matches, read_json, stop_pid, write_json


class LocalService:
    """A detached process recorded in ``state_path`` (JSON with ``pid`` and ``port``).

    A recorded pid counts only while that process's command line still contains
    :meth:`identity` (a path unique to this instance), so a reused pid is never taken for ours.
    """

    home: Path
    state_path: Path

    def identity(self) -> str:
        """A string only this instance's command line contains."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return read_json(self.state_path)

    @property
    def pid(self) -> int | None:
        """The pid of this instance's process if it is running, else None."""
        pid = self._state().get("pid")
        return int(pid) if pid and pid_matches(int(pid), self.identity()) else None

    @property
    def port(self) -> int | None:
        """The port this instance last started on."""
        value = self._state().get("port")
        return int(value) if value else None

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the process: SIGTERM, then SIGKILL after ``timeout``. True if one was running."""
        pid = self.pid
        state = self._state()
        if state.get("pid"):
            write_json(self.state_path, state | {"pid": None})
        return stop_pid(pid, timeout=timeout) if pid is not None else False
