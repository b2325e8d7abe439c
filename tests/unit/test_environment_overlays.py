"""Environment overlays: one registry, per-environment sizing, nothing structural."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tradesignals_dagster.cli import main
from tradesignals_dagster.cli_env import environment_diff
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.errors import RegistryError
from tradesignals_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _overlay(project: Path, text: str, env: str = "staging") -> Path:
    path = project / "registry" / "environments" / f"{env}.yaml"
    path.write_text(text)
    return path


def test_production_overlay_carries_the_seeds_settings(project: Path) -> None:
    dev = load_app(Settings(registry=project / "registry"))
    prod = load_app(Settings(registry=project / "registry", env="production"))
    assert dev.environment == "development" and prod.environment == "production"
    for tid in ("option_trades", "option_trades_aggs"):
        assert (dev.topics[tid].replication_factor, dev.topics[tid].min_insync_replicas) == (1, 1)
        assert (prod.topics[tid].replication_factor, prod.topics[tid].min_insync_replicas) == (3, 2)
    bars = "option_trade_volume_bars"
    assert prod.pipelines[bars].config["runtime"]["checkpoint_interval_s"] == 2
    assert prod.pipelines[bars].config["bar_volume"] == dev.pipelines[bars].config["bar_volume"]
    diff = {row["path"] for row in environment_diff(dev, prod)}
    assert "Topics.option_trades.replication_factor" in diff
    assert not any(p.startswith("Topics.option_trades.value_schema") for p in diff)


def test_env_comes_from_the_variable_too(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tradesignals_dagster.settings import load_settings

    monkeypatch.setenv("TRADESIGNALS_ENV", "production")
    settings = load_settings(registry=project / "registry")
    assert load_app(settings).topics["option_trades"].replication_factor == 3


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("Topics:\n  new_topic:\n    num_partitions: 3\n", 2, "which the registry does not declare"),
        ("Topics:\n  option_trades:\n    value_serializer: json\n", 3, "cannot be set per environment"),
        ("Topics:\n  option_trades:\n    replicaton_factor: 3\n", 3, "did you mean 'replication_factor'"),
        (
            "Topics:\n  option_trades:\n    replication_factor: 1\n    min_insync_replicas: 2\n",
            4,
            "min_insync_replicas (2) exceeds replication_factor (1)",
        ),
        (
            "Pipelines:\n  option_trades_ingest:\n    input: {type: replay}\n",
            3,
            "cannot be set per environment",
        ),
        ("Secrets:\n  x: 1\n", 1, "unknown section 'Secrets'"),
        ("Topics:\n  option_trades:\n    num_partitions: 0\n", 3, "greater than or equal to 1"),
    ],
)
def test_bad_overlays_name_file_line_and_key(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, expected: str
) -> None:
    _overlay(project, text)
    code = main(["validate", "--registry", str(project / "registry"), "--env", "staging"])
    out = capsys.readouterr().out
    assert code == 2
    assert f"environments/staging.yaml:{line}" in out and expected in out, out


def test_validate_checks_every_environment(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _overlay(project, "Topics:\n  option_trades:\n    num_partitions: -4\n", env="qa")
    code = main(["validate", "--registry", str(project / "registry")])  # the default environment
    out = capsys.readouterr().out
    assert code == 2 and "environments/qa.yaml:3" in out, out


def test_unknown_env_lists_the_known_ones(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--registry", str(project / "registry"), "--env", "prodution"])
    out = capsys.readouterr().out
    assert code == 2
    assert "unknown environment 'prodution' (known: development, production)" in out
    assert "did you mean 'production'" in out
    with pytest.raises(RegistryError):
        load_app(Settings(registry=project / "registry", env="nope"))


def test_diff_env_prints_what_differs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diff-env", "development", "production", "--registry", str(project / "registry")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Topics.option_trades.replication_factor: 1 -> 3" in out
    assert "Topics.option_trades_aggs.min_insync_replicas: 1 -> 2" in out
