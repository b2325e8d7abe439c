"""ClickHouse DDL from Avro: types, codecs, keys, TTL and the sink's metadata columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.registry.tables import StreamingTable
from tradesignals_dagster.warehouse.ddl import (
    UnsupportedTypeError,
    add_column_sql,
    clickhouse_type,
    create_table_sql,
    data_columns,
    table_columns,
)

ROOT = Path(__file__).parent.parent.parent


@pytest.mark.parametrize(
    ("avro", "low", "expected"),
    [
        ({"type": "long", "logicalType": "timestamp-millis"}, False, "DateTime64(3, 'UTC')"),
        ({"type": "long", "logicalType": "timestamp-micros"}, False, "DateTime64(6, 'UTC')"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 4}, False, "Decimal(12, 4)"),
        ("string", False, "String"),
        ("string", True, "LowCardinality(String)"),
        (["null", "string"], True, "LowCardinality(Nullable(String))"),
        (["null", "long"], False, "Nullable(Int64)"),
        ("int", False, "Int32"),
        ("double", False, "Float64"),
        ("float", False, "Float32"),
        ("boolean", False, "Bool"),
        ({"type": "array", "items": "string"}, False, "Array(String)"),
        ({"type": "map", "values": "long"}, False, "Map(String, Int64)"),
        ({"type": "enum", "name": "Side", "symbols": ["B", "S"]}, False, "LowCardinality(String)"),
        ({"type": "int", "logicalType": "date"}, False, "Date32"),
    ],
)
def test_avro_types_map_to_clickhouse(avro: object, low: bool, expected: str) -> None:
    assert clickhouse_type(avro, low) == expected


def test_a_union_of_two_types_is_refused() -> None:
    with pytest.raises(UnsupportedTypeError, match="union"):
        clickhouse_type(["string", "long"])


def test_flagship_bars_table_ddl() -> None:
    app = load_application(ROOT / "registry")
    schema = app.schemas["option_trades_aggs"]
    table = StreamingTable(
        key="bars", topic_id="option_trades_aggs", order_by=["symbol", "timestamp"], ttl_days=30
    )
    sql = create_table_sql(table, schema)
    assert "`symbol` LowCardinality(String)" in sql
    assert "`timestamp` DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))" in sql
    assert "`open` Decimal(12, 4) CODEC(ZSTD(1))" in sql
    assert "`_offset` Int64 CODEC(Delta, ZSTD(1))" in sql
    assert "`_topic` LowCardinality(String) DEFAULT 'option_trades_aggs'" in sql
    assert "PARTITION BY toYYYYMMDD(timestamp)" in sql
    assert "ORDER BY (symbol, timestamp)" in sql
    assert "TTL toDateTime(timestamp) + toIntervalDay(30)" in sql
    assert "non_replicated_deduplication_window = 10000" in sql
    names = [c.name for c in table_columns(table, schema)]
    assert names[-5:] == ["_ts_id", "_topic", "_partition", "_offset", "_inserted_at"]
    assert names[: len(schema["fields"])] == [f["name"] for f in schema["fields"]]


def test_partitioning_options_and_nullable_keys() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "venue", "type": ["null", "string"], "default": None},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "n", "type": "long", "default": 7},
        ],
    }
    monthly = StreamingTable(key="t", topic_id="x", order_by=["venue", "ts"], partition_by="month")
    sql = create_table_sql(monthly, schema)
    assert "PARTITION BY toYYYYMM(ts)" in sql and "allow_nullable_key = 1" in sql
    assert "TTL" not in sql
    flat = StreamingTable(key="t", topic_id="x", order_by=["ts"], partition_by="none", low_cardinality=[])
    sql = create_table_sql(flat, schema)
    assert "PARTITION BY" not in sql and "`venue` Nullable(String)" in sql
    new = data_columns(flat, schema)[2]
    assert add_column_sql(flat, new, "ts") == (
        "ALTER TABLE `tradesignals`.`t` ADD COLUMN IF NOT EXISTS `n` Int64 DEFAULT 7 CODEC(ZSTD(1)) AFTER `ts`"
    )
