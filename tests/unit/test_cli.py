"""The installed console script and the seed-compatible shell wrapper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
CLI = str(Path(sys.executable).parent / "tradesignals")


def test_console_script_validates_the_flagship_registry() -> None:
    proc = subprocess.run([CLI, "validate"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "registry: valid - 4 topic(s), 4 schema(s), 4 pipeline(s)" in proc.stdout


def test_console_script_exits_2_without_traceback_on_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "pipelines.yaml").write_text("StreamingApplication:\n  id: [unclosed\n")
    proc = subprocess.run(
        [CLI, "validate", "--registry", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "pipelines.yaml:3" in proc.stdout and "YAML syntax error" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_shell_wrapper_shows_help() -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "tradesignals.sh"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "validate" in proc.stdout
