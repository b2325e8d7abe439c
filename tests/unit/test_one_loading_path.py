"""One loading path: the CLI, the Dagster definitions and a pipeline process compute the same
desired-state version for every pipeline, whatever their working directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ("option_trades_ingest", "option_trade_volume_bars")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the flagship project whose config.yaml differs from the repository's, so a
    loader that silently falls back to the repository's pipelines/ is caught."""
    dest = tmp_path / "project"
    shutil.copytree(ROOT / "registry", dest / "registry")
    shutil.copytree(ROOT / "pipelines", dest / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    config = dest / "pipelines" / "option_trade_volume_bars" / "config.yaml"
    config.write_text(config.read_text().replace("bar_volume: 500", "bar_volume: 321"))
    return dest


def _run(code: str, cwd: Path, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _cli_versions(project: Path, cwd: Path, state: Path) -> dict[str, str]:
    code = (
        "import sys; from tradesignals_dagster.cli import main; "
        f"sys.exit(main(['pipelines', 'status', '--json', '--registry', {str(project / 'registry')!r}, "
        f"'--state-dir', {str(state)!r}]))"
    )
    rows = json.loads(_run(code, cwd, {}))
    return {row["id"]: row["desired_version"] for row in rows if row["id"] in PIPELINES}


def _dagster_versions(project: Path, cwd: Path, state: Path) -> dict[str, str]:
    code = (
        "import json; from tradesignals_dagster.definitions import defs; "
        "from tradesignals_dagster.deploy.desired import desired_state\n"
        "res = defs().resources['tradesignals']\n"
        "app, settings = res.app(), res.settings()\n"
        f"print(json.dumps({{k: desired_state(app, k, settings).version for k in {PIPELINES!r}}}))"
    )
    env = {"TRADESIGNALS_REGISTRY": str(project / "registry"), "TRADESIGNALS_STATE_DIR": str(state)}
    return dict(json.loads(_run(code, cwd, env)))


def _entry_point_version(key: str, env: dict[str, str]) -> str:
    code = (
        "from tradesignals_dagster.streaming.entry import load_pipeline\n"
        "from tradesignals_dagster.deploy.desired import desired_state\n"
        f"app, settings = load_pipeline({key!r})\n"
        f"print(desired_state(app, {key!r}, settings).version)"
    )
    return _run(code, Path("/"), env).strip()


def test_every_front_end_agrees_on_the_version_from_any_directory(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings = Settings(registry=project / "registry", state_dir=state)
    app = load_app(settings)
    expected = {k: desired_state(app, k, settings).version for k in PIPELINES}

    assert settings.pipelines_dir == project / "pipelines"
    assert app.pipelines["option_trade_volume_bars"].config["bar_volume"] == 321
    for cwd in (elsewhere, project, ROOT):
        assert _cli_versions(project, cwd, state) == expected, f"CLI from {cwd}"
        assert _dagster_versions(project, cwd, state) == expected, f"Dagster from {cwd}"
    for key in PIPELINES:
        env = desired_state(app, key, settings).env
        assert _entry_point_version(key, env) == expected[key], f"entry point of {key}"


def test_a_config_change_changes_the_version_everywhere(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    before = _cli_versions(project, tmp_path, state)
    config = project / "pipelines" / "option_trade_volume_bars" / "config.yaml"
    config.write_text(config.read_text().replace("bar_volume: 321", "bar_volume: 654"))
    after = _cli_versions(project, tmp_path, state)
    assert after["option_trade_volume_bars"] != before["option_trade_volume_bars"]
    assert after["option_trades_ingest"] == before["option_trades_ingest"]
    assert _dagster_versions(project, tmp_path, state) == after


def test_pipelines_directory_rule(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "pipelines").mkdir(parents=True)
    assert Settings(registry=seed).pipelines_dir == seed / "pipelines"  # the seed's layout
    apart = tmp_path / "apart" / "registry"
    apart.mkdir(parents=True)
    only = Settings(registry=apart)
    assert only.pipelines_dir == tmp_path / "apart" / "pipelines"
    assert only.pipelines_to_check() is None  # a registry kept apart from its code
    given = Settings(registry=apart, pipelines_dir=tmp_path / "missing")
    assert given.pipelines_to_check() == tmp_path / "missing"  # a given one is always checked
