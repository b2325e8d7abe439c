"""Problems found in a registry, reported all at once with file, line and YAML path."""

from __future__ import annotations

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
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        prefix = "warning: " if self.severity == "warning" else ""
        location = f" {self.path}" if self.path else ""
        return f"{where}{location}: {prefix}{self.message}"


class RegistryError(TradesignalsError):
    """The registry cannot be used; every problem found is attached, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        lines = "\n".join(p.render() for p in errors)
        super().__init__(f"the registry has {len(errors)} problem(s):\n{lines}")


def display_path(path: Path) -> str:
    """A path relative to the working directory when it lies under it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
