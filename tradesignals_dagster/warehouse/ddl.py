"""ClickHouse DDL from a registry table and its topic's Avro schema (pure functions).

Column types are what a ClickHouse engineer would pick for the Avro type: ``timestamp-millis`` ->
``DateTime64(3, 'UTC')``, ``decimal(p, s)`` -> ``Decimal(p, s)``, ``["null", T]`` ->
``Nullable(T)``, symbol-like strings -> ``LowCardinality(String)``. Timestamps and offsets are
stored with ``Delta``/``DoubleDelta`` before ``ZSTD`` (they grow steadily); other columns with
``ZSTD(1)``. Every table also gets the sink's metadata columns: ``_ts_id`` (the runtime's ``ts-id``
header, the record identity), ``_topic``, ``_partition``, ``_offset`` (the Kafka position, which
makes each row traceable and lets the sink's exactly-once be checked) and ``_inserted_at``.

Types are spelled the way ClickHouse prints them in ``system.columns`` so the planner can compare
the desired columns with the live ones as strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tradesignals_dagster.registry.tables import StreamingTable, event_time_of
from tradesignals_dagster.warehouse.errors import WarehouseError

LOW_CARDINALITY_DEFAULTS = frozenset(
    {
        "symbol",
        "underlying",
        "root",
        "exchange",
        "venue",
        "currency",
        "side",
        "option_type",
        "right",
        "publisher_id",
        "dataset_id",
        "condition",
    }
)
"""String fields stored as LowCardinality(String) when a table gives no ``low_cardinality``."""
ZSTD = "ZSTD(1)"
_PRIMITIVES = {
    "int": "Int32",
    "long": "Int64",
    "float": "Float32",
    "double": "Float64",
    "boolean": "Bool",
    "bytes": "String",
    "string": "String",
}


class UnsupportedTypeError(WarehouseError):
    """An Avro type has no faithful ClickHouse column type (e.g. a union of two non-null types)."""


@dataclass(frozen=True)
class Column:
    """One column: name, ClickHouse type, codec, default expression and the Avro field it holds."""

    name: str
    type: str
    codec: str | None = None
    default: str | None = None
    comment: str = ""
    source: str | None = None

    def sql(self) -> str:
        """The column as written in CREATE TABLE / ADD COLUMN."""
        parts = [quote_ident(self.name), self.type]
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.codec:
            parts.append(f"CODEC({self.codec})")
        if self.comment:
            parts.append(f"COMMENT {quote_string(self.comment)}")
        return " ".join(parts)


def quote_ident(name: str) -> str:
    """A backquoted ClickHouse identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(text: str) -> str:
    """A single-quoted ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def clickhouse_type(avro_type: Any, low_cardinality: bool = False) -> str:
    """The ClickHouse type of an Avro type (logical types and nullable unions included)."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        if len(others) != 1:
            raise UnsupportedTypeError(f"union {json.dumps(avro_type)} has no ClickHouse column type")
        inner = clickhouse_type(others[0], low_cardinality)
        if "null" not in avro_type:
            return inner
        if inner.startswith("LowCardinality("):
            return f"LowCardinality(Nullable({inner[len('LowCardinality(') : -1]}))"
        if inner.startswith(("Array(", "Map(", "Tuple(")):
            return inner  # ClickHouse cannot make composite types Nullable; empty stands for null
        return f"Nullable({inner})"
    if isinstance(avro_type, str):
        if avro_type not in _PRIMITIVES:
            raise UnsupportedTypeError(f"Avro type '{avro_type}' has no ClickHouse column type")
        base = _PRIMITIVES[avro_type]
        return "LowCardinality(String)" if low_cardinality and avro_type == "string" else base
    if isinstance(avro_type, dict):
        return _complex(avro_type, low_cardinality)
    raise UnsupportedTypeError(f"Avro type {avro_type!r} has no ClickHouse column type")


def _complex(avro_type: dict[str, Any], low_cardinality: bool) -> str:
    logical = avro_type.get("logicalType")
    kind = avro_type.get("type")
    if logical == "timestamp-millis":
        return "DateTime64(3, 'UTC')"
    if logical == "timestamp-micros":
        return "DateTime64(6, 'UTC')"
    if logical == "date":
        return "Date32"
    if logical == "decimal":
        return f"Decimal({int(avro_type['precision'])}, {int(avro_type.get('scale', 0))})"
    if kind == "enum":
        return "LowCardinality(String)"
    if kind == "fixed":
        return f"FixedString({int(avro_type['size'])})"
    if kind == "array":
        return f"Array({clickhouse_type(avro_type['items'])})"
    if kind == "map":
        return f"Map(String, {clickhouse_type(avro_type['values'])})"
    if kind == "record":
        inner = ", ".join(f"{f['name']} {clickhouse_type(f['type'])}" for f in avro_type.get("fields", []))
        return f"Tuple({inner})"
    return clickhouse_type(kind, low_cardinality)


def _codec(ch_type: str) -> str | None:
    if ch_type.startswith("LowCardinality("):
        return None  # dictionary-encoded already
    if "DateTime64" in ch_type or ch_type == "Date32":
        return f"DoubleDelta, {ZSTD}" if not ch_type.startswith("Nullable(") else ZSTD
    return ZSTD


def _default(field: dict[str, Any], ch_type: str) -> str | None:
    """A DEFAULT expression from the Avro default, where it maps one to one."""
    if "default" not in field or field["default"] is None:
        return None
    value = field["default"]
    if ch_type in ("String", "LowCardinality(String)") and isinstance(value, str):
        return quote_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and ch_type.startswith(("Int", "UInt", "Float", "Nullable(Int")):
        return repr(value)
    return None


def low_cardinality_columns(table: StreamingTable, schema: dict[str, Any]) -> set[str]:
    """The string fields stored as LowCardinality: the table's list, or the symbol-like defaults."""
    if table.low_cardinality is not None:
        return set(table.low_cardinality)
    return {f["name"] for f in schema.get("fields", []) if f["name"] in LOW_CARDINALITY_DEFAULTS}


def data_columns(table: StreamingTable, schema: dict[str, Any]) -> list[Column]:
    """One column per Avro field, in schema order."""
    low = low_cardinality_columns(table, schema)
    out = []
    for field in schema.get("fields", []):
        try:
            ch_type = clickhouse_type(field["type"], field["name"] in low)
        except UnsupportedTypeError as exc:
            raise UnsupportedTypeError(f"table {table.key}, field '{field['name']}': {exc}") from exc
        out.append(
            Column(
                field["name"],
                ch_type,
                _codec(ch_type),
                _default(field, ch_type),
                str(field.get("doc") or ""),
                field["name"],
            )
        )
    return out


def metadata_columns(table: StreamingTable) -> list[Column]:
    """The sink's columns: identity, Kafka position and insert time."""
    return [
        Column("_ts_id", "String", ZSTD, comment="Record identity (the ts-id header)"),
        Column(
            "_topic",
            "LowCardinality(String)",
            default=quote_string(table.topic_id),
            comment="Kafka topic the row was read from",
        ),
        Column("_partition", "Int32", ZSTD, comment="Kafka partition"),
        Column("_offset", "Int64", f"Delta, {ZSTD}", comment="Kafka offset"),
        Column(
            "_inserted_at",
            "DateTime64(3, 'UTC')",
            f"DoubleDelta, {ZSTD}",
            default="now64(3)",
            comment="When the sink inserted the row",
        ),
    ]


def table_columns(table: StreamingTable, schema: dict[str, Any]) -> list[Column]:
    """Every column of the table: the schema's fields, then the sink's metadata."""
    return data_columns(table, schema) + metadata_columns(table)


def partition_expression(table: StreamingTable, schema: dict[str, Any]) -> str | None:
    """The PARTITION BY expression, ``None`` for an unpartitioned table."""
    if table.partition_by == "none":
        return None
    if table.partition_by in ("day", "month"):
        event_time = event_time_of(table, schema)
        if event_time is None:
            raise WarehouseError(
                f"table {table.key}: partition_by {table.partition_by} needs a timestamp field"
            )
        fn = "toYYYYMMDD" if table.partition_by == "day" else "toYYYYMM"
        return f"{fn}({event_time})"
    return table.partition_by


def sorting_key(table: StreamingTable) -> str:
    """The ORDER BY key as ClickHouse prints it (``system.tables.sorting_key``)."""
    return ", ".join(table.order_by)


def ttl_expression(table: StreamingTable, schema: dict[str, Any]) -> str | None:
    """The TTL expression, ``None`` when rows never expire."""
    event_time = event_time_of(table, schema)
    if table.ttl_days is None or event_time is None:
        return None
    return f"toDateTime({event_time}) + toIntervalDay({table.ttl_days})"


def create_database_sql(database: str) -> str:
    """CREATE DATABASE IF NOT EXISTS."""
    return f"CREATE DATABASE IF NOT EXISTS {quote_ident(database)}"


def create_table_sql(table: StreamingTable, schema: dict[str, Any]) -> str:
    """The CREATE TABLE statement of a registry table."""
    columns = table_columns(table, schema)
    nullable_key = any("Nullable(" in c.type for c in columns if c.name in table.order_by)
    lines = [f"CREATE TABLE IF NOT EXISTS {quote_ident(table.database)}.{quote_ident(table.key)}", "("]
    lines.append(",\n".join(f"    {c.sql()}" for c in columns))
    lines += [")", "ENGINE = MergeTree"]
    partition = partition_expression(table, schema)
    if partition:
        lines.append(f"PARTITION BY {partition}")
    lines.append(f"ORDER BY ({sorting_key(table)})")
    ttl = ttl_expression(table, schema)
    if ttl:
        lines.append(f"TTL {ttl}")
    settings = [
        f"non_replicated_deduplication_window = {table.engine.deduplication_window}",
        f"index_granularity = {table.engine.index_granularity}",
    ]
    if nullable_key:
        settings.append("allow_nullable_key = 1")
    lines.append("SETTINGS " + ", ".join(settings))
    if table.doc:
        lines.append(f"COMMENT {quote_string(table.doc)}")
    return "\n".join(lines)


def add_column_sql(table: StreamingTable, column: Column, after: str | None) -> str:
    """ALTER TABLE ... ADD COLUMN for a new schema field."""
    position = f" AFTER {quote_ident(after)}" if after else " FIRST"
    return (
        f"ALTER TABLE {quote_ident(table.database)}.{quote_ident(table.key)} "
        f"ADD COLUMN IF NOT EXISTS {column.sql()}{position}"
    )


def modify_ttl_sql(table: StreamingTable, ttl: str | None) -> str:
    """ALTER TABLE ... MODIFY TTL (or REMOVE TTL)."""
    name = f"{quote_ident(table.database)}.{quote_ident(table.key)}"
    return f"ALTER TABLE {name} MODIFY TTL {ttl}" if ttl else f"ALTER TABLE {name} REMOVE TTL"
