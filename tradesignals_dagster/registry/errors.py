"""Problems found in a registry, reported all at once with file, line and YAML path."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tradesignals_dagster.errors import TradesignalsError

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong (or suspicious) in the registry, located as precisely as possible."""

    file: str
    line: int | None
    path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """``file:line path: reason`` — the format editors and CI logs can jump to."""
        file = escape_controls(self.file)
        where = file if self.line is None else f"{file}:{self.line}"
        prefix = "warning: " if self.severity == "warning" else ""
        location = f" {escape_controls(self.path)}" if self.path else ""
        return f"{where}{location}: {prefix}{escape_controls(self.message)}"


_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}


def escape_controls(text: str) -> str:
    """``text`` with control and format characters written as escapes (``\\x1b``, ``\\u202e``).

    Keys and values from the registry reach terminals and CI logs through messages; escape
    sequences or right-to-left overrides in them must show as text, not act on the terminal.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in _INVISIBLE:
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out)


class RegistryError(TradesignalsError):
    """The registry cannot be used; every problem found is attached, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(p.render() for p in errors)
        super().__init__(f"the registry has {len(errors)} problem(s):\n{lines}")


class UnreadableFileError(TradesignalsError):
    """A registry file that is not read: missing, outside the registry, special, too big, not UTF-8.

    Raised by :func:`tradesignals_dagster.registry.files.read_confined` and turned into a
    ``file: reason`` problem by the loader; ``reason`` never holds the file's content.
    """

    exit_code = 2

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        self.reason = reason
        self.missing = missing
        super().__init__(reason)


def display_path(path: Path) -> str:
    """A path relative to the working directory when it lies under it, else as given.

    The file's own name is kept even when it is a link: messages name the file the user
    wrote, not where a link points (which may be outside the registry).
    """
    cwd = Path.cwd()
    try:
        return str(Path(os.path.abspath(path)).relative_to(cwd))
    except ValueError:
        pass
    try:
        return str((path.parent.resolve() / path.name).relative_to(cwd.resolve()))
    except (ValueError, OSError, RuntimeError):  # outside the cwd, or a symlink loop
        return str(path)
