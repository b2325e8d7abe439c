"""Process and port helpers shared by the stack's services, written once.

The stack's servers run as detached processes (their own session, output to a log file) so
they outlive the command that started them. These helpers start such a process, wait for it
to answer, stop it by pid, pick free ports on 127.0.0.1 and read the end of a log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"

# Children started by this process, kept so they are reaped by Popen.poll() rather than left
# for Popen.__del__ (which warns) or as zombies that would still look alive.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def find_free_port(host: str = LOCALHOST) -> int:
    """A port on ``host`` that nothing listens on right now, chosen by the kernel.

    Binding port 0 lets the kernel pick; the port is released again before returning, so a
    caller should bind it soon. Used when the user does not ask for a particular port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """Whether binding ``host:port`` fails because the address is taken.

    Checked before a server starts so the user gets a clear error instead of a Java stack
    trace. SO_REUSEADDR is set as the JVM and asyncio servers do, so a port only in
    TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def tcp_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP GET of ``url`` answers 200, ignoring any proxy settings.

    Proxies are bypassed because the stack's services are on loopback, and a proxy from the
    environment would otherwise receive (and fail) the request.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_detached(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``.

    The new session keeps the process alive after the starting command exits and out of the
    terminal's signals; its process group lets :func:`stop_pid` end any children too.
    Returns the pid.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return int(proc.pid)


def _reap(pid: int) -> bool:
    """Reap ``pid`` if it is an exited child of ours; True when it has exited."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else None


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    if not pid or pid <= 0:
        return False
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def pid_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat).

    Recorded next to a pid so a later check can tell the same process from a new one that
    was given the recycled pid. None where /proc is unavailable or the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # fields after "(comm)" start at field 3: 22 - 3 = 19
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    """This boot's id (Linux), so a pid recorded before a reboot is never taken as alive."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def pid_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` joined by spaces, or None where it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def pid_matches(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``marker``.

    Guards against pid reuse: a pid recorded in a state file is only signalled when it still
    belongs to the process the stack started. Without /proc the liveness check alone is used.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    cmdline = pid_cmdline(pid)
    return cmdline is None or marker in cmdline


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.25,
    pid: int | None = None,
) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass.

    When ``pid`` is given, stop early (returning False) once that process has died, so a
    server that crashes at start-up is reported at once instead of after the full timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if pid is not None and not pid_alive(pid):
            return check()
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``, or to ``pid`` alone."""
    with contextlib.suppress(ProcessLookupError):
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return
        if group == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pid(pid: int | None, timeout: float = 20.0) -> bool:
    """Stop ``pid`` with SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds.

    Processes started by :func:`start_detached` lead their own process group, so the whole
    group is signalled. Returns True if a running process was stopped, False if none ran.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    _signal(pid, signal.SIGTERM)
    if wait_until(lambda: not pid_alive(pid), timeout, interval=0.1):
        return True
    _signal(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10.0, interval=0.1)
    return True


def last_lines(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``: the part of a tool's output worth showing."""
    return "\n".join(text.splitlines()[-lines:])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the text file at ``path`` ('' if it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return last_lines(data.decode(errors="replace"), lines)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object stored at ``path``, or ``{}`` if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path`` for the duration of the block.

    Serialises concurrent ``stack up`` / ``stack down`` calls on one state directory, and
    deploy/stop of one pipeline. With ``blocking`` False the block runs at once and gets
    False when someone else holds the lock (True otherwise).
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
