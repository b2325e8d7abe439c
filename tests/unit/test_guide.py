"""docs/guide/writing-a-pipeline.md is executed: every bash and python block runs, in order, in a
copy of the registry and pipelines, and each output block must equal what the block before it
printed. Blocks that need the local stack must at least be commands the CLI accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tradesignals_dagster.cli import build_parser

ROOT = Path(__file__).parent.parent.parent
GUIDE = ROOT / "docs" / "guide" / "writing-a-pipeline.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2).strip(), m.group(3)) for m in BLOCK.finditer(GUIDE.read_text())]


def test_the_guide_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    env |= {"PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(tmp_path)}
    last: str | None = None
    ran = compared = 0
    for lang, tag, body in blocks():
        if lang == "output":
            assert last is not None, "an output block must follow a block that runs"
            assert last.rstrip("\n") == body.rstrip("\n"), f"guide output differs:\n{last}"
            compared += 1
            last = None
            continue
        if tag == "needs-stack":
            check_commands(body)
            continue
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", body]
        elif lang == "python":
            cmd = [sys.executable, "-c", body]
        else:
            continue
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert run.returncode == 0, (
            f"guide block failed ({run.returncode}):\n{body}\n{run.stdout}\n{run.stderr}"
        )
        last = run.stdout
        ran += 1
    assert ran >= 9 and compared >= 8


def check_commands(body: str) -> None:
    """Each ``tradesignals`` line of a block parses with the CLI's own parser."""
    parser = build_parser()
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words and words[0] == "tradesignals":
            parser.parse_args(words[1:])  # SystemExit (a failed test) when the CLI refuses it
