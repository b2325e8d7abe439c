"""A tiny supervisor that runs one pipeline command and records how it ended.

``python -P -m tradesignals_dagster.deploy.supervisor --run-dir DIR --run-id ID -- CMD...``

Why a wrapper: the process runtime starts pipelines from short-lived commands (the CLI, a
Dagster run), so nobody that stays around is the pipeline's parent and could reap its exit
code. The supervisor is that parent. It

* starts ``CMD`` in its own process group (the supervisor leads a new session, see
  :func:`tradesignals_dagster.stack.process.start_detached`), with the child set to receive
  SIGTERM should the supervisor die (Linux ``PR_SET_PDEATHSIG``), so no pipeline outlives it;
* forwards SIGTERM and SIGINT to the child, so ``kill <supervisor>`` is a graceful stop;
* copies the child's stdout and stderr into ``DIR/pipeline.log``, rotating it at a size limit
  (``pipeline.log.1`` ... ``.N``), which a child writing straight to the file could not do;
* writes ``DIR/run.json`` (run id, child pid and start time, then exit code, signal, end time
  and whether a stop signal was forwarded), so "crashed" versus "stopped" and the exit code
  are exact. The runtime owns ``state.json``; the supervisor only ever writes ``run.json``.

The supervisor exits with the child's exit code (128 + N when the child died of signal N).
This module also holds the log readers (:func:`tail_lines`, :func:`follow`) that know the
rotation scheme. It imports nothing heavy: it runs once per pipeline for weeks.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from tradesignals_dagster.stack.process import pid_start_time, read_json, write_json

LOG_FILE = "pipeline.log"
RUN_FILE = "run.json"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_BACKUPS = 3
_PR_SET_PDEATHSIG = 1
_CHUNK = 64 * 1024


class RotatingLog:
    """An append-only byte log that moves itself to ``<name>.1`` once it exceeds ``max_bytes``.

    Older copies shift to ``.2`` ... ``.backups``; the oldest is dropped. With ``backups`` 0
    the file is truncated instead. ``max_bytes`` 0 disables rotation. Writes are unbuffered
    so ``tail`` and the runtime see output as soon as the pipeline prints it.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS):
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("ab", buffering=0)
        self._size = self._fh.tell()
        self._at_line_start = True

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first when it would push the file past the limit."""
        if self.max_bytes > 0 and self._size > 0 and self._size + len(data) > self.max_bytes:
            self.rotate()
        self._fh.write(data)
        self._size += len(data)
        if data:
            self._at_line_start = data.endswith(b"\n")

    def line(self, text: str) -> None:
        """Append one line of the supervisor's own, marked and timestamped."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if not self._at_line_start:  # end the half-written line of a killed child first
            self.write(b"\n")
        self.write(f"{stamp} [supervisor] {text}\n".encode())

    def rotate(self) -> None:
        """Shift ``.N-1`` to ``.N`` ... the live file to ``.1`` and start an empty one."""
        self._fh.close()
        if self.backups <= 0:
            self.path.write_bytes(b"")
        else:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fh = self.path.open("ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def _read_last(path: Path, lines: int) -> list[bytes]:
    """Up to the last ``lines`` lines of ``path``, reading backwards in blocks."""
    try:
        fh = path.open("rb")
    except OSError:
        return []
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(_CHUNK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    return data.splitlines()[-lines:] if lines > 0 else []


def tail_lines(path: Path, lines: int = 100) -> str:
    """The last ``lines`` lines of a rotated log, continuing into ``<name>.1`` when needed."""
    found = _read_last(path, lines)
    if len(found) < lines:
        found = _read_last(path.with_name(path.name + ".1"), lines - len(found)) + found
    return b"\n".join(found).decode(errors="replace")


def follow(path: Path, *, poll: float = 0.5, should_stop: Callable[[], bool] | None = None) -> Iterator[str]:
    """Yield text appended to ``path`` from now on, like ``tail -F``, across rotations.

    A rotation (the path now names another file, or the file shrank) is noticed on the
    next poll: the rest of the old file is yielded, then the new one from its start. Stops
    when ``should_stop`` returns True; otherwise runs until the caller stops iterating.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fh = None
    skip_existing = True  # only output written from now on, unless the file appears later
    try:
        while should_stop is None or not should_stop():
            if fh is None:
                with contextlib.suppress(OSError):
                    fh = path.open("rb")
                    if skip_existing:
                        fh.seek(0, os.SEEK_END)
                skip_existing = False
            if fh is not None:
                data = fh.read()
                if data:
                    yield decoder.decode(data)
                    continue
                try:
                    now = path.stat()
                    moved = now.st_ino != os.fstat(fh.fileno()).st_ino or now.st_size < fh.tell()
                except OSError:
                    moved = False
                if moved:
                    rest = fh.read()
                    fh.close()
                    fh = path.open("rb")
                    if rest:
                        yield decoder.decode(rest)
                    continue
            time.sleep(poll)
    finally:
        if fh is not None:
            fh.close()


def _load_prctl() -> Callable[[int, int], Any] | None:
    """libc's ``prctl``, loaded before forking (so the child only calls it), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent_hook(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when the supervisor dies (Linux only)."""
    prctl = _load_prctl()
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return hook


def run(command: Sequence[str], run_dir: Path, run_id: str, max_bytes: int, backups: int) -> int:
    """Run ``command`` under supervision (see the module doc) and return its exit status."""
    log = RotatingLog(run_dir / LOG_FILE, max_bytes, backups)
    record: dict[str, Any] = {"run_id": run_id, "supervisor_pid": os.getpid(), "started_at": time.time()}
    forwarded: list[int] = []
    holder: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        forwarded.append(signum)
        if holder and holder[0].returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder[0].pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        child = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            close_fds=True,
            preexec_fn=_die_with_parent_hook(os.getpid()),
        )
    except OSError as exc:
        log.line(f"cannot start {list(command)}: {exc}")
        record.update(exit_code=127, ended_at=time.time(), error=str(exc))
        write_json(run_dir / RUN_FILE, record)
        return 127
    holder.append(child)
    record.update(child_pid=child.pid, child_start=pid_start_time(child.pid))
    write_json(run_dir / RUN_FILE, record)
    log.line(f"started pid {child.pid} (run {run_id})")
    if forwarded:  # a stop arrived before the child existed
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, forwarded[0])
    _pump(child, log)
    code = child.wait()
    if code < 0:
        record["signal"] = signal.Signals(-code).name
    record.update(exit_code=code, ended_at=time.time(), forwarded=[signal.Signals(s).name for s in forwarded])
    log.line(f"pid {child.pid} exited with code {code}" + (f" ({record['signal']})" if code < 0 else ""))
    write_json(run_dir / RUN_FILE, record)
    log.close()
    return code if code >= 0 else 128 - code


def _pump(child: subprocess.Popen[bytes], log: RotatingLog) -> None:
    """Copy the child's output to the log until it closes its end or exits."""
    assert child.stdout is not None
    fd = child.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            data = os.read(fd, _CHUNK)
            if not data:
                return
            log.write(data)
        elif child.poll() is not None:
            return  # exited, but a grandchild keeps the pipe open: stop copying


def read_run(run_dir: Path) -> dict[str, Any]:
    """What the supervisor recorded about its run in ``run_dir`` (``{}`` if nothing yet)."""
    return read_json(run_dir / RUN_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--run-dir DIR --run-id ID [--max-bytes N] [--backups K] -- CMD...`` and run."""
    parser = argparse.ArgumentParser(prog="tradesignals-supervisor", description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--backups", type=int, default=DEFAULT_BACKUPS)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    return run(command, args.run_dir, args.run_id, args.max_bytes, args.backups)


if __name__ == "__main__":
    sys.exit(main())
