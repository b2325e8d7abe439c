"""`tradesignals new pipeline`: a working pipeline with its test, registry edits that keep the
YAML as written, and refusals (existing id or topic, bad window, missing key field) that leave
every file as it was."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals_dagster.cli import main
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import load_settings

ROOT = Path(__file__).parent.parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def new(project: Path, *args: str) -> int:
    return main(
        [
            "new",
            "pipeline",
            *args,
            "--registry",
            str(project / "registry"),
            "--pipelines",
            str(project / "pipelines"),
        ]
    )


def test_window_pipeline_is_scaffolded_registered_and_its_test_passes(project: Path) -> None:
    before = {n: (project / "registry" / n).read_text() for n in ("pipelines.yaml", "topics.yaml")}
    rc = new(
        project,
        "trade_counts",
        "--input-topic",
        "option_trades",
        "--output-topic",
        "trade_counts_1s",
        "--template",
        "window",
    )
    assert rc == 0
    folder = project / "pipelines" / "trade_counts"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Dockerfile",
        "README.md",
        "app.py",
        "config.yaml",
        "records.py",
        "test_trade_counts.py",
    ]
    records = (folder / "records.py").read_text()
    assert "class InputRecord(TypedDict):" in records and "    price: int" in records
    assert "class OutputRecord(TypedDict):" in records and "    window_start: int" in records
    assert (project / "registry" / "schemas" / "trade_counts_1s.avsc").is_file()
    for name, text in before.items():  # every original line kept, in order (comments and layout)
        after = (project / "registry" / name).read_text().splitlines()
        it = iter(after)
        assert all(line in it for line in text.splitlines()), name
    app = load_app(load_settings(registry=project / "registry", pipelines_dir=project / "pipelines"))
    pipe = app.pipelines["trade_counts"]
    assert pipe.input.kafka_topic_id == "option_trades" and pipe.output.topic_id == "trade_counts_1s"
    assert [f["name"] for f in app.schemas["trade_counts_1s"]["fields"]][:2] == ["symbol", "window_start"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "test_trade_counts.py")],
        capture_output=True, text=True, timeout=240, cwd=project,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["option_trade_volume_bars", "--output-topic", "x_out"],
            "pipeline 'option_trade_volume_bars' already exists",
        ),
        (
            ["fresh", "--output-topic", "option_trades_aggs"],
            "is written by pipeline 'option_trade_volume_bars'",
        ),
        (
            ["fresh", "--output-topic", "x_out", "--template", "window", "--window-ms", "0"],
            "window size must be positive",
        ),
        (
            ["fresh", "--output-topic", "x_out", "--key-field", "ticker"],
            "--key-field 'ticker': input topic option_trades",
        ),
        (["Bad-Id", "--output-topic", "x_out"], "pipeline id 'Bad-Id'"),
    ],
)
def test_refusals_exit_2_and_write_nothing(
    project: Path, args: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_digest(project)
    assert new(project, *args, "--input-topic", "option_trades") == 2
    assert reason in capsys.readouterr().err
    assert tree_digest(project) == before


def test_a_registry_that_does_not_validate_afterwards_is_rolled_back(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An environment overlay the scaffold does not touch is broken, so the registry with the new
    # pipeline fails the final validation: every file written so far must be undone.
    overlay = project / "registry" / "environments" / "production.yaml"
    overlay.write_text(
        overlay.read_text()
        + "\n  x_out:\n    num_partitions: -3\n".replace("\n  x_out", "\nPipelines_typo:\n  x_out")
    )
    before = tree_digest(project)
    rc = new(project, "fresh", "--input-topic", "option_trades", "--output-topic", "x_out")
    assert rc == 2
    assert "the registry with fresh does not validate (nothing written)" in capsys.readouterr().err
    assert tree_digest(project) == before
    assert "fresh" not in {p.name for p in (project / "pipelines").iterdir()}
