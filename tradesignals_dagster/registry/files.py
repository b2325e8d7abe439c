"""Reading registry files safely: regular files inside one directory, under a size limit.

The registry is edited by many people; a reference such as ``Topics: ../../etc/passwd``, a
symlink pointing out of the checkout, a FIFO or ``/dev/zero`` must not make ``validate`` read
outside the registry, hang or fill memory. Every file the loader reads goes through
:func:`read_confined`: the path is resolved (links followed), must lie inside the given root,
must be a regular file of at most :data:`MAX_FILE_BYTES`, and is opened non-blocking so that a
FIFO swapped in between the checks cannot block. Nothing is read from a refused file, so no
message can quote it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from tradesignals_dagster.registry.errors import UnreadableFileError, display_path

MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest registry file read (8 MiB): far above any real registry, far below a machine's memory."""


def confined_reference(ref: str, within: str = "the registry directory") -> str | None:
    """Why the reference ``ref`` (a path written in the registry) is not allowed, or ``None``.

    Only relative paths that stay inside the directory they are resolved against are accepted;
    links are checked later, when the file is opened.
    """
    if not ref.strip():
        return f"is empty; give a file name relative to {within}"
    if "\x00" in ref:
        return "contains a NUL character"
    if ref.startswith(("/", "~", "\\")) or (len(ref) > 1 and ref[1] == ":"):
        return f"must be a path relative to {within}, not an absolute path"
    if ".." in Path(ref).parts:
        return f"may not use '..'; files outside {within} are not read"
    return None


def module_path_problem(module_path: str) -> str | None:
    """Why ``module_path`` cannot name a module inside a pipeline directory, or ``None``."""
    if module_path.endswith(".py") or "/" in module_path:
        refused = confined_reference(module_path, "the pipeline's directory pipelines/<id>/")
        if refused is not None:
            return f"module_path {refused}"
        if "\\" in module_path or not module_path.endswith(".py"):
            return "a module_path file must be a relative path ending in .py, with '/' separators"
        return None
    parts = module_path.split(".")
    if not all(part.isidentifier() for part in parts):
        return "module_path must be a dotted module name (feeds.my_feed) or a relative .py path"
    return None


def module_files(module_path: str, folder: Path) -> list[Path]:
    """The files ``module_path`` may name inside ``folder``, in the order the runtime tries them."""
    if module_path.endswith(".py") or "/" in module_path:
        return [folder / PurePosixPath(module_path)]
    base = folder.joinpath(*module_path.split("."))
    return [base.with_name(base.name + ".py"), base / "__init__.py"]


def _resolve(path: Path) -> Path:
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        raise UnreadableFileError("file not found", missing=True) from None
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise UnreadableFileError("symlink loop; the link never reaches a file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableFileError("symlink loop; the link never reaches a file") from None
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from None


def _check_kind(mode: int, size: int) -> None:
    if stat.S_ISDIR(mode):
        raise UnreadableFileError("is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise UnreadableFileError("is not a regular file (a FIFO, socket or device); only files are read")
    if size > MAX_FILE_BYTES:
        raise UnreadableFileError(
            f"file is {size:,} bytes, over the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit"
        )


def read_confined(path: Path, root: Path) -> str:
    """The UTF-8 text of ``path``, which must be a regular file inside ``root`` once links are resolved.

    Raises :class:`UnreadableFileError` with the reason (never the content) otherwise.
    """
    real = _resolve(path)
    try:
        real_root = root.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UnreadableFileError(f"the directory {display_path(root)} cannot be resolved") from None
    if not real.is_relative_to(real_root):
        raise UnreadableFileError(
            f"resolves outside {display_path(root)} (through a link or '..'); only files inside it are read"
        )
    try:
        before = os.stat(real)
        _check_kind(before.st_mode, before.st_size)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(real, flags)
    except PermissionError:
        raise UnreadableFileError("cannot read file: permission denied") from None
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        opened = os.fstat(fd)
        _check_kind(opened.st_mode, opened.st_size)  # the file swapped after the first check
        data = _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFileError(
            f"file grew over the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit while read"
        )
    return _decode(data)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = os.read(fd, min(1024 * 1024, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnreadableFileError(
            f"line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None
