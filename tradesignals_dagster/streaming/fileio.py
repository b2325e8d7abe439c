"""Opening record files safely: inputs that are regular files, outputs written all or nothing.

* :func:`open_input` opens a file for reading without blocking on a FIFO and refuses anything
  that is not a regular file (directory, device, socket, symlink loop) with the path and why.
* :func:`text_lines` decodes a file line by line as UTF-8, dropping a leading byte-order mark
  (Excel writes one), and names the line and byte of the first bad one.
* :func:`refuse_same_file` stops a replay from writing over its own input, also through a
  symbolic or hard link (compared by device and inode).
* :class:`AtomicOutput` writes under a temporary name in the target's directory and renames it
  into place only when everything was written, so a failure leaves no half-written file and
  an existing output untouched.

Every problem is a :class:`RecordFileError` (invalid input, exit 2) or an
:class:`OutputFileError` (could not write, exit 1) whose message starts with the path.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

from tradesignals_dagster.streaming.errors import OutputFileError, RecordFileError

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def open_input(path: Path) -> BinaryIO:
    """``path`` opened for binary reading; :class:`RecordFileError` unless it is a readable
    regular file (symbolic links are followed). Opening does not block on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise RecordFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordFileError(f"{path}: cannot be opened: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RecordFileError(f"{path}: {_kind(mode)}, not a regular file of records")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def text_lines(fh: Iterable[bytes], path: Path) -> Iterator[str]:
    """Each line of ``fh`` decoded as UTF-8 (line endings kept), without a leading BOM.

    A line that is not UTF-8 stops the read with the line number and the offending byte: a
    Latin-1 or Windows-1252 export must be converted, not half read.
    """
    for number, raw in enumerate(fh, 1):
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordFileError(
                f"{path}: line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_same_file(paths: dict[str, Path | None]) -> None:
    """:class:`RecordFileError` when two of the named paths are one file (``{"input": ...,
    "output": ...}``), whether by the same name, a symbolic link or a hard link."""
    seen: dict[tuple[int, int] | Path, str] = {}
    for role, path in paths.items():
        if path is None:
            continue
        key: tuple[int, int] | Path = _identity(path) or Path(os.path.realpath(path))
        if key in seen:
            other = seen[key]
            raise RecordFileError(
                f"{path}: the {role} is the same file as the {other}; writing it would destroy the {other}"
            )
        seen[key] = role


class AtomicOutput:
    """A file written under a temporary name beside ``target`` and renamed over it on
    :meth:`commit`; :meth:`discard` (or leaving a ``with`` block by an exception) removes it.

    The temporary file is created with ``O_EXCL`` and the usual ``0o666 & ~umask`` mode, in
    the target's own directory so the rename is atomic. An existing target that is not a
    regular file (a directory, a device, a FIFO) is refused rather than replaced.
    """

    def __init__(self, target: Path | str) -> None:
        self.target = Path(target)
        self._check_target()
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            raise OutputFileError(f"{self.target}: cannot create its directory: {reason}") from None
        self.temp_path = parent / f".{self.target.name}.{uuid.uuid4().hex[:12]}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.temp_path, flags, 0o666)
        except OSError as exc:
            raise OutputFileError(f"{self.target}: cannot be written: {exc.strerror or exc}") from None
        self.binary: BinaryIO | None = os.fdopen(fd, "wb")
        self._text: io.TextIOWrapper | None = None
        self.done = False

    def _check_target(self) -> None:
        try:
            mode = self.target.stat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputFileError(f"{self.target}: cannot be written: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):
            raise RecordFileError(f"{self.target}: {_kind(mode)}; the output must be a regular file")

    def text(self, newline: str | None = None) -> IO[str]:
        """The file as UTF-8 text (``newline`` as for :func:`open`)."""
        if self._text is None:
            assert self.binary is not None
            self._text = io.TextIOWrapper(self.binary, encoding="utf-8", newline=newline)
        return self._text

    def commit(self) -> None:
        """Flush, sync and rename the temporary file over the target."""
        if self.done:
            return
        try:
            stream: IO[bytes] | IO[str] | None = self._text or self.binary
            assert stream is not None
            stream.flush()
            assert self.binary is not None
            os.fsync(self.binary.fileno())
            self._close()
            os.replace(self.temp_path, self.target)
        except OSError as exc:
            self.discard()
            raise OutputFileError(f"{self.target}: cannot be written: {exc.strerror or exc}") from None
        self.done = True

    def discard(self) -> None:
        """Close and remove the temporary file; the target is left as it was."""
        if self.done:
            return
        with contextlib.suppress(OSError):
            self._close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()
        self.done = True

    def _close(self) -> None:
        text, binary, self._text, self.binary = self._text, self.binary, None, None
        if text is not None:
            text.close()  # closes the binary file too
        elif binary is not None:
            binary.close()

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_error(path: Path, exc: BaseException) -> OutputFileError:
    """The error for a failed write to ``path`` (disk full, I/O error, Arrow's own errors)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return OutputFileError(f"{path}: cannot be written: {reason}")
