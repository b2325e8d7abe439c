"""The executed guide (docs/guide/writing-a-pipeline.md): its blocks, and one walk over them.

Shared by ``tests/unit/test_guide.py`` (every block runs offline; blocks tagged ``needs-stack``
are only parsed with the CLI's parser) and ``tests/integration/test_guide_on_stack.py`` (every
block runs, on the local stack). Not a test module: the tests put ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tradesignals_dagster.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide" / "writing-a-pipeline.md"
_BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)
NEEDS_STACK = "needs-stack"


@dataclass(frozen=True)
class Block:
    """A fenced block: ``bash``/``python`` runs, ``output`` is what the block before printed."""

    lang: str
    tag: str
    body: str

    @property
    def needs_stack(self) -> bool:
        return self.tag == NEEDS_STACK

    def argv(self) -> list[str] | None:
        """The command that runs the block (bash with errexit and pipefail), or None."""
        if self.lang == "bash":
            return ["bash", "-euo", "pipefail", "-c", self.body]
        if self.lang == "python":
            return [sys.executable, "-c", self.body]
        return None


def blocks(path: Path = GUIDE) -> list[Block]:
    return [Block(m.group(1), m.group(2).strip(), m.group(3)) for m in _BLOCK.finditer(path.read_text())]


def copy_project(dest: Path, *, pyproject: bool = False) -> None:
    """The files the guide's commands read and change: the registry and pipelines (and, for
    ``dg``, which needs a project directory, pyproject.toml)."""
    shutil.copytree(ROOT / "registry", dest / "registry")
    shutil.copytree(ROOT / "pipelines", dest / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    if pyproject:
        shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def guide_env(workdir: Path) -> dict[str, str]:
    """The reader's shell: the virtualenv active, no ``TRADESIGNALS_*`` settings of ours."""
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    env |= {
        "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(workdir),
        "VIRTUAL_ENV": sys.prefix,
    }
    return env


def check_commands(body: str) -> None:
    """Each ``tradesignals`` line of a block parses with the CLI's own parser."""
    parser = build_parser()
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words and words[0] == "tradesignals":
            parser.parse_args(words[1:])  # SystemExit (a failed test) when the CLI refuses it


@dataclass
class Walked:
    ran: int = 0
    compared: int = 0
    parsed_only: int = 0


def walk(
    workdir: Path,
    env: dict[str, str],
    *,
    with_stack: bool,
    after: Callable[[Block, str], None] | None = None,
    timeout: float = 240,
    stack_timeout: float = 600,
) -> Walked:
    """Run the guide's blocks in order in ``workdir``; each ``output`` block must equal what the
    block before it printed. ``needs-stack`` blocks run only ``with_stack`` (else their
    ``tradesignals`` commands are parsed). ``after(block, stdout)`` follows each block run."""
    walked = Walked()
    last: str | None = None
    for block in blocks():
        if block.lang == "output":
            assert last is not None, "an output block must follow a block that runs"
            assert last.rstrip("\n") == block.body.rstrip("\n"), f"guide output differs:\n{last}"
            walked.compared += 1
            last = None
            continue
        argv = block.argv()
        if argv is None:
            continue
        if block.needs_stack and not with_stack:
            check_commands(block.body)
            walked.parsed_only += 1
            last = None  # what a stack block prints is not compared (pids, uptimes)
            continue
        run = subprocess.run(
            argv,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=stack_timeout if block.needs_stack else timeout,
        )
        assert run.returncode == 0, (
            f"guide block failed ({run.returncode}):\n{block.body}\n{run.stdout}\n{run.stderr}"
        )
        last = None if block.needs_stack else run.stdout
        walked.ran += 1
        if after is not None:
            after(block, run.stdout)
    return walked
