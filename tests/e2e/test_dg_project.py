"""The project is a `dg` project: `dg check defs` and `dg list defs --json`, run as a user runs
them (the installed `dg`, from the project root), load the flagship registry and any other valid
registry that ``TRADESIGNALS_REGISTRY`` points at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent.parent
DG = str(Path(sys.executable).parent / "dg")


def run_dg(args: list[str], tmp_path: Path, registry: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADESIGNALS_", "DAGSTER_"))}
    env |= {"VIRTUAL_ENV": sys.prefix, "TRADESIGNALS_STATE_DIR": str(tmp_path / "state")}
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    if registry is not None:
        env["TRADESIGNALS_REGISTRY"] = str(registry)
    return subprocess.run(
        [DG, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def listed_assets(tmp_path: Path, registry: Path | None = None) -> dict[str, dict[str, Any]]:
    result = run_dg(["list", "defs", "--json"], tmp_path, registry)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    listed = json.loads(result.stdout)
    return {a["asset_key"]: a for a in listed["assets"]}


def test_dg_check_defs_passes_on_the_flagship(tmp_path: Path) -> None:
    result = run_dg(["check", "defs"], tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr
    assert "virtual environment does not match" not in result.stdout + result.stderr


def test_dg_list_defs_lists_the_flagship_graph_with_groups(tmp_path: Path) -> None:
    assets = listed_assets(tmp_path)
    groups = {key: a["group_name"] for key, a in assets.items()}
    role = {
        "feeds": "feeds",
        "pipelines": "pipelines",
        "schemas": "schemas",
        "kafka": "topics",
        "sinks": "warehouse",
        "clickhouse": "warehouse",
        "datasets": "datasets",
        "models": "models",
    }
    assert {key: role[key.split("/")[0]] for key in groups} == groups  # every asset in its role's group
    for expected in (
        "feeds/option_trades_ingest_feed",
        "pipelines/option_trades_ingest",
        "pipelines/option_trade_volume_bars",
        "schemas/option_trades-value",
        "kafka/option_trades",
        "kafka/option_trades_aggs",
        "sinks/option_trades_aggs_sink",
        "clickhouse/option_trades_aggs_table",
        "datasets/option_volume_bars",
    ):
        assert expected in groups, sorted(groups)
    assert all(a["description"] and a["kinds"] for a in assets.values())


def test_dg_checks_and_lists_another_registry_from_the_environment(tmp_path: Path) -> None:
    reg = tmp_path / "other"
    reg.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "seed" / "pipelines.yaml", reg / "pipelines.yaml")
    data = yaml.safe_load((reg / "pipelines.yaml").read_text())
    topics = data["StreamingApplication"]["Topics"]
    topics["option_trades"]["value_schema"]["fields"] = [{"name": "symbol", "type": "string"}]
    topics["quotes"] = {"value_serializer": "json", "replication_factor": 1, "min_insync_replicas": 1}
    data["StreamingApplication"]["Pipelines"]["quote_feed"] = {
        "input": {"type": "websocket", "url": "ws://127.0.0.1:9/quotes"},
        "output": {"topic_id": "quotes"},
    }
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(data))

    check = run_dg(["check", "defs"], tmp_path, reg)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-3000:]

    assets = listed_assets(tmp_path, reg)
    assert set(assets) == {
        "feeds/quote_feed_source",
        "pipelines/quote_feed",
        "pipelines/option_trade_volume_bars",
        "schemas/option_trades-value",
        "schemas/option_trades_aggs-value",
        "kafka/option_trades",
        "kafka/option_trades_aggs",
        "kafka/quotes",
    }
    assert assets["pipelines/quote_feed"]["dependency_keys"] == ["feeds/quote_feed_source"]


def test_dg_check_defs_fails_and_names_the_problem_on_a_broken_registry(tmp_path: Path) -> None:
    reg = tmp_path / "broken"
    reg.mkdir()
    (reg / "pipelines.yaml").write_text("StreamingApplication:\n  id: x\n  Topics:\n    bad topic: {}\n")
    result = run_dg(["check", "defs"], tmp_path, reg)
    assert result.returncode != 0
    assert "pipelines.yaml" in result.stdout + result.stderr
