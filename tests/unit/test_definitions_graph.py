"""The Dagster asset graph is exactly what the registry implies (snapshot), for any registry:
keys, groups by role, kinds, descriptions, and node labels that tell every asset apart."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.keys import GROUPS
from tradesignals_dagster.settings import Settings

ROOT = Path(__file__).parent.parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "flagship_asset_graph.json"


def graph_of(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {
        key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    }
    kinds = {key.to_user_string(): sorted(graph.get(key).kinds) for key in graph.get_all_asset_keys()}
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    sensors = sorted(s.name for s in defs.sensors or [])
    return {
        "assets": assets,
        "groups": dict(sorted(groups.items())),
        "kinds": dict(sorted(kinds.items())),
        "checks": checks,
        "sensors": sensors,
    }


# Key prefix -> the group by role its assets are in.
ROLE_GROUPS = {
    "feeds": "feeds",
    "pipelines": "pipelines",
    "schemas": "schemas",
    "kafka": "topics",
    "sinks": "warehouse",
    "clickhouse": "warehouse",
    "datasets": "datasets",
    "models": "models",
}


def flagship_defs(tmp_path: Path) -> dg.Definitions:
    return build_definitions(
        Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)
    )


def test_flagship_graph_matches_snapshot(tmp_path: Path) -> None:
    settings = Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)
    actual = graph_of(build_definitions(settings))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(actual, indent=2) + "\n")
    assert actual == json.loads(SNAPSHOT.read_text())


def test_flagship_graph_reads_as_data_flow(tmp_path: Path) -> None:
    settings = Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)
    assets = graph_of(build_definitions(settings))["assets"]
    assert assets["pipelines/option_trades_ingest"] == ["feeds/option_trades_ingest_feed"]
    assert assets["kafka/option_trades"] == ["pipelines/option_trades_ingest", "schemas/option_trades-value"]
    assert assets["pipelines/option_trade_volume_bars"] == ["kafka/option_trades"]
    assert assets["kafka/option_trades_aggs"] == [
        "pipelines/option_trade_volume_bars",
        "schemas/option_trades_aggs-value",
    ]


def test_any_valid_registry_yields_its_own_graph(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
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
    settings = Settings(registry=reg, state_dir=tmp_path)  # no pipelines/ beside it: code kept apart

    assets = graph_of(build_definitions(settings))["assets"]

    assert assets == {
        "feeds/quote_feed_source": [],
        "kafka/option_trades": ["schemas/option_trades-value"],
        "kafka/option_trades_aggs": [
            "pipelines/option_trade_volume_bars",
            "schemas/option_trades_aggs-value",
        ],
        "kafka/quotes": ["pipelines/quote_feed"],
        "pipelines/option_trade_volume_bars": ["kafka/option_trades"],
        "pipelines/quote_feed": ["feeds/quote_feed_source"],
        "schemas/option_trades-value": [],
        "schemas/option_trades_aggs-value": [],
    }


def test_volume_bars_topic_carries_column_lineage_from_trades(tmp_path: Path) -> None:
    settings = Settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=tmp_path)
    graph = build_definitions(settings).resolve_asset_graph()
    lineage = graph.get(dg.AssetKey(["kafka", "option_trades_aggs"])).metadata["dagster/column_lineage"]
    vwap = {(d.asset_key.to_user_string(), d.column_name) for d in lineage.deps_by_column["vwap"]}
    assert vwap == {("kafka/option_trades", "price"), ("kafka/option_trades", "size")}


def test_every_asset_has_a_role_group_a_description_and_a_kind(tmp_path: Path) -> None:
    graph = flagship_defs(tmp_path).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name in GROUPS, (key, node.group_name)
        assert node.group_name == ROLE_GROUPS[key.path[0]], key
        assert node.description and node.description.strip(), key
        assert node.kinds, key


def test_node_labels_are_unique_and_tell_a_feed_from_its_pipeline(tmp_path: Path) -> None:
    """The UI labels a node with the key's last component: no two assets may share one."""
    keys = flagship_defs(tmp_path).resolve_asset_graph().get_all_asset_keys()
    labels = [k.path[-1] for k in keys]
    assert len(labels) == len(set(labels)), sorted(labels)
    assert "option_trades_ingest_feed" in labels
    assert "option_trades_ingest" in labels


def test_app_tag_is_a_valid_dagster_tag_for_any_app_id(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    data = yaml.safe_load((ROOT / "tests" / "fixtures" / "seed" / "pipelines.yaml").read_text())
    data["StreamingApplication"]["id"] = "Trade Signals / EU (prod) " + "x" * 80
    topics = data["StreamingApplication"]["Topics"]
    topics["option_trades"]["value_schema"]["fields"] = [{"name": "symbol", "type": "string"}]
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(data))
    graph = build_definitions(Settings(registry=reg, state_dir=tmp_path)).resolve_asset_graph()
    tags = {graph.get(k).tags["tradesignals/app"] for k in graph.get_all_asset_keys()}
    assert len(tags) == 1
    (tag,) = tags
    assert tag.startswith("Trade_Signals___EU__prod__x") and len(tag) == 63


def test_the_redeploy_sensor_ticks_at_the_configured_interval(tmp_path: Path) -> None:
    def interval(**extra: Any) -> int | None:
        settings = Settings(registry=ROOT / "registry", state_dir=tmp_path / "state", **extra)
        return build_definitions(settings).resolve_sensor_def("pipeline_redeploy").minimum_interval_seconds

    assert interval() == 5
    assert interval(redeploy_interval_s=3) == 3


def test_both_sensors_launch_the_in_process_deploy_job_over_every_workload(tmp_path: Path) -> None:
    """A redeploy's run executes in its own process (no second process per step: seconds off every
    config change), and the job covers every pipeline and sink the sensors may ask for."""
    defs = flagship_defs(tmp_path)
    job = defs.resolve_job_def("deploy_workloads")
    assert job.executor_def is dg.in_process_executor
    workloads = {
        key.to_user_string()
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] in ("pipelines", "sinks")
    }
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == workloads
    assert len(workloads) >= 5
    for name in ("pipeline_redeploy", "pipeline_health"):
        assert defs.resolve_sensor_def(name).job_name == "deploy_workloads"
