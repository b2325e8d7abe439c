"""The registry's ``Tables`` section: defaults, and every bad reference named by file, line and key."""

from __future__ import annotations

from pathlib import Path

from tradesignals_dagster.registry import load_registry

SCHEMA = """
namespace: t
name: Trade
type: record
fields:
  - {name: symbol, type: string}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: price, type: bytes, logical_type: decimal, precision: 12, scale: 4}
"""


def _registry(tmp_path: Path, tables: str, extra_topics: str = "") -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "trades.yaml").write_text(SCHEMA)
    (tmp_path / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\n"
        "Topics:\n  trades: {value_schema_id: trades}\n"
        "  raw: {value_serializer: json}\n" + extra_topics + tables
    )
    return tmp_path


def _errors(tmp_path: Path, tables: str) -> list[str]:
    result = load_registry(_registry(tmp_path, tables))
    return [f"{p.file}:{p.line} {p.path}: {p.message}" for p in result.errors]


def test_a_table_loads_with_defaults(tmp_path: Path) -> None:
    result = load_registry(
        _registry(tmp_path, "Tables:\n  trades_t:\n    topic_id: trades\n    order_by: [symbol, timestamp]\n")
    )
    app = result.require()
    table = app.tables["trades_t"]
    assert (table.database, table.partition_by, table.topic_id) == ("tradesignals", "day", "trades")
    assert table.consumer_group() == "clickhouse-trades_t"
    assert table.dlq_topic() == "trades.dlq"
    assert table.sink.flush_interval_s == 1.0 and table.engine.deduplication_window >= 100


def test_unknown_topic_is_named_with_line_and_key(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "Tables:\n  t1:\n    topic_id: trade\n    order_by: [symbol]\n")
    assert any("pipelines.yaml:8 Tables.t1.topic_id: unknown topic 'trade'" in e for e in errors), errors
    assert any("did you mean 'trades'" in e for e in errors), errors


def test_a_topic_without_avro_is_refused(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "Tables:\n  t1:\n    topic_id: raw\n    order_by: [symbol]\n")
    assert any("Tables.t1.topic_id" in e and "no Avro value schema" in e for e in errors), errors


def test_order_by_column_must_exist(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "Tables:\n  t1:\n    topic_id: trades\n    order_by: [symbol, ts]\n")
    assert any(":9 Tables.t1.order_by[1]: order_by column 'ts'" in e for e in errors), errors


def test_unsafe_table_id_and_unknown_key(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "Tables:\n  bad-name:\n    topic_id: trades\n    order_by: [symbol]\n  ok:\n    topic_id: trades\n    order_by: [symbol]\n    orderby: 1\n",
    )
    assert any("Tables.bad-name" in e and "ClickHouse name" in e for e in errors), errors
    assert any("Tables.ok.orderby" in e and "unknown key" in e for e in errors), errors


def test_partition_and_low_cardinality_columns_are_checked(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "Tables:\n  t1:\n    topic_id: trades\n    order_by: [symbol]\n    partition_by: venue\n"
        "    low_cardinality: [exchange]\n    event_time: price\n",
    )
    assert any("Tables.t1.partition_by" in e for e in errors), errors
    assert any("Tables.t1.low_cardinality[0]" in e for e in errors), errors
    assert any("Tables.t1.event_time" in e for e in errors), errors
