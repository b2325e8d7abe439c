"""A registry table becomes kafka/<topic> -> sinks/<table> -> clickhouse/<table> in the asset graph,
with kinds, the warehouse group, column schema and Avro-field-to-column lineage, its checks and the
observation sensor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.settings import Settings

SCHEMA = """
namespace: t
name: Trade
type: record
fields:
  - {name: symbol, type: string}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: price, type: bytes, logical_type: decimal, precision: 12, scale: 4}
"""


def _defs(tmp_path: Path, tables: str) -> dg.Definitions:
    reg = tmp_path / "reg"
    (reg / "schemas").mkdir(parents=True)
    (reg / "schemas" / "trades.yaml").write_text(SCHEMA)
    (reg / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  trades: {value_schema_id: trades}\n" + tables
    )
    return build_definitions(Settings(registry=reg, state_dir=tmp_path / "state"))


def test_a_table_yields_kafka_sink_clickhouse_lineage(tmp_path: Path) -> None:
    defs = _defs(tmp_path, "Tables:\n  trades_t:\n    topic_id: trades\n    order_by: [symbol, timestamp]\n")
    graph = defs.resolve_asset_graph()
    sink, table = dg.AssetKey(["sinks", "trades_t_sink"]), dg.AssetKey(["clickhouse", "trades_t_table"])
    assert graph.get(sink).parent_keys == {dg.AssetKey(["kafka", "trades"])}
    assert graph.get(table).parent_keys == {sink}
    assert graph.get(sink).kinds == {"kafka", "clickhouse"} and graph.get(table).kinds == {"clickhouse"}
    assert graph.get(sink).group_name == graph.get(table).group_name == "warehouse"
    spec = defs.resolve_assets_def(table).specs_by_key[table]
    columns = {c.name: c.type for c in spec.metadata["dagster/column_schema"].columns}
    assert columns["timestamp"] == "DateTime64(3, 'UTC')" and columns["price"] == "Decimal(12, 4)"
    assert "_ts_id" in columns and "_offset" in columns
    lineage = spec.metadata["dagster/column_lineage"].deps_by_column
    assert set(lineage) == {"symbol", "timestamp", "price"}
    assert lineage["price"] == [
        dg.TableColumnDep(asset_key=dg.AssetKey(["kafka", "trades"]), column_name="price")
    ]
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == table}
    assert {"no_duplicated_identity", "complete_against_topic"} <= checks
    assert "fresh" in checks
    assert "table_observations" in {s.name for s in defs.sensors or []}


def test_no_tables_add_nothing(tmp_path: Path) -> None:
    defs = _defs(tmp_path, "")
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert not any(k.startswith(("sinks/", "clickhouse/")) for k in keys)
    assert "table_observations" not in {s.name for s in defs.sensors or []}
