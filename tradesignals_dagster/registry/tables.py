"""The ``Tables`` section: ClickHouse tables fed from topics, and their cross-checks.

A table is named by its mapping key (the ClickHouse table name), reads one Avro topic
(``topic_id``) and gets its columns from that topic's value schema (see
:mod:`tradesignals_dagster.warehouse.ddl`). Everything the sink that fills it needs (batch sizes,
its consumer group) is here too, so the registry stays the one source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tradesignals_dagster.registry.identifiers import TopicName, safe_id_problem

_CH_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
PARTITION_KEYWORDS = ("day", "month", "none")
METADATA_COLUMNS = ("_ts_id", "_topic", "_partition", "_offset", "_inserted_at")
"""Columns the sink adds to every table: record identity, Kafka position, insert time."""


def table_name_problem(name: str, what: str = "a table id") -> str | None:
    """Why ``name`` cannot be a ClickHouse table or database name here, or ``None``.

    The registry's safe-identifier rule, without ``-`` (which ClickHouse only accepts quoted),
    so a name is usable unquoted in SQL, as an asset key and as a consumer group.
    """
    problem = safe_id_problem(name, what)
    if problem is not None:
        return problem
    if not _CH_IDENT.fullmatch(name):
        return f"{what} must start with a letter and use only letters, digits and '_' (a ClickHouse name)"
    return None


def _check_name(value: str) -> str:
    reason = table_name_problem(value, "a name")
    if reason is not None:
        raise ValueError(reason)
    return value


TableName = Annotated[str, AfterValidator(_check_name)]
"""A ClickHouse table, database or column name usable unquoted."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class TableEngine(_Model):
    """MergeTree settings of a table."""

    deduplication_window: int = Field(
        10_000,
        ge=100,
        le=10_000_000,
        description="non_replicated_deduplication_window: how many recent inserts' tokens the table "
        "remembers, so a replayed insert is dropped (the sink's exactly-once relies on it).",
    )
    index_granularity: int = Field(8192, ge=128, le=1_048_576, description="MergeTree index_granularity.")


class SinkSettings(_Model):
    """How the continuous sink batches the topic into inserts."""

    batch_rows: int = Field(
        200_000, ge=1, le=1_000_000, description="Most rows in one insert (per Kafka partition)."
    )
    batch_bytes: int = Field(
        64 * 2**20, ge=1024, le=2**30, description="Most message bytes in one insert (per Kafka partition)."
    )
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Insert at least this often when data is waiting (about 1 insert/s).",
    )
    consumer_group: TopicName | None = Field(
        None, description="Kafka consumer group of the sink; 'clickhouse-<table>' if unset."
    )
    dead_letter_topic: TopicName | None = Field(
        None, description="Topic for messages the table cannot take; '<topic>.dlq' if unset."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level of the sink process."
    )


class StreamingTable(_Model):
    """One ClickHouse table fed from a topic (``Tables.<id>``; the id is the table name)."""

    key: TableName = Field(
        description="Table id and name (the mapping key): a letter, then letters, digits, '_'."
    )
    topic_id: TopicName = Field(description="The topic that feeds the table; its value schema must be Avro.")
    database: TableName = Field("tradesignals", description="ClickHouse database of the table.")
    order_by: list[str] = Field(
        min_length=1, description="ORDER BY columns (schema fields or metadata columns), most selective last."
    )
    partition_by: str = Field(
        "day",
        description="day or month of event_time (toYYYYMMDD / toYYYYMM), none, or a column name.",
    )
    event_time: str | None = Field(
        None,
        description="The timestamp field that partitions, expires and measures freshness; "
        "defaults to 'timestamp' or the schema's first timestamp field.",
    )
    ttl_days: int | None = Field(None, ge=1, le=36_500, description="Drop rows older than this many days.")
    freshness_s: float = Field(
        900.0,
        gt=0,
        le=30 * 86_400,
        allow_inf_nan=False,
        description="The table's freshness check fails when its newest event_time is older than this "
        "many seconds.",
    )
    low_cardinality: list[str] | None = Field(
        None,
        description="String fields stored as LowCardinality(String); unset: symbol-like fields "
        "(symbol, underlying, exchange, venue, currency, side...).",
    )
    engine: TableEngine = Field(default_factory=TableEngine, description="MergeTree settings.")
    sink: SinkSettings = Field(default_factory=SinkSettings, description="The continuous sink's batching.")
    doc: str | None = Field(None, description="What the table holds.")

    def consumer_group(self) -> str:
        """The sink's consumer group."""
        return self.sink.consumer_group or f"clickhouse-{self.key}"

    def dlq_topic(self) -> str:
        """Where the sink sends messages the table cannot take."""
        return self.sink.dead_letter_topic or f"{self.topic_id}.dlq"

    def qualified(self) -> str:
        """``database.table``."""
        return f"{self.database}.{self.key}"


Add = Callable[..., None]


def load_tables(loc: Any, ctx: Any) -> dict[str, StreamingTable]:
    """Validate the ``Tables`` section at ``loc`` (a ``Located``), reporting through ``ctx``."""
    from tradesignals_dagster.registry.context import Located, validate_model, value_at

    out: dict[str, StreamingTable] = {}
    value = None if loc is None else value_at(loc)
    if value is None:
        return out
    if not isinstance(value, dict):
        ctx.add(loc.doc, loc.path, "Tables must be a mapping of table id to table")
        return out
    for key, raw in value.items():
        path = (*loc.path, key)
        report = ctx.reporter(loc.doc, path)
        reason = table_name_problem(str(key))
        if reason is not None:
            report((), f"{reason} (it names the ClickHouse table, its sink and its asset)")
            continue
        if not isinstance(raw, dict):
            report((), "a table must be a mapping")
            continue
        table = validate_model(StreamingTable, {**raw, "key": str(key)}, {}, {}, report)
        if table is not None:
            out[str(key)] = table
            ctx.places[f"table:{key}"] = Located(loc.doc, path)
    return out


def _schema_fields(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema.get("fields", []) if isinstance(f, dict) and "name" in f}


def is_timestamp(avro_type: Any) -> bool:
    """Whether an Avro field type is a timestamp-millis/micros (possibly nullable)."""
    if isinstance(avro_type, list):
        return any(is_timestamp(t) for t in avro_type if t != "null")
    return isinstance(avro_type, dict) and avro_type.get("logicalType") in (
        "timestamp-millis",
        "timestamp-micros",
    )


def event_time_of(table: StreamingTable, schema: dict[str, Any]) -> str | None:
    """The event-time field: ``event_time``, else ``timestamp``, else the first timestamp field."""
    fields = _schema_fields(schema)
    if table.event_time:
        return table.event_time
    if "timestamp" in fields and is_timestamp(fields["timestamp"]):
        return "timestamp"
    return next((name for name, t in fields.items() if is_timestamp(t)), None)


def check_tables(app: Any, places: dict[str, Any], add: Add) -> None:
    """Cross-check tables against topics and schemas, reporting with file, line and key."""
    for key, table in app.tables.items():
        place = places.get(f"table:{key}")

        def at(*sub: str | int, msg: str, place: Any = place) -> None:
            if place is None:
                add("registry", (), msg)
            else:
                add(place.doc, (*place.path, *sub), msg)

        topic = app.topics.get(table.topic_id)
        if topic is None:
            from tradesignals_dagster.registry.normalise import suggest

            at("topic_id", msg=f"unknown topic '{table.topic_id}'{suggest(table.topic_id, list(app.topics))}")
            continue
        schema = app.schemas.get(table.topic_id)
        if topic.value_serializer != "avro" or schema is None:
            at(
                "topic_id",
                msg=f"topic '{table.topic_id}' has no Avro value schema (value_serializer "
                f"{topic.value_serializer}); a table's columns come from its topic's Avro schema",
            )
            continue
        _check_columns(table, schema, at)
        group = table.consumer_group()
        clash = [
            k for k, p in app.pipelines.items() if p.input.type == "kafka" and p.consumer_group() == group
        ]
        if clash:
            at(
                "sink",
                msg=f"consumer group '{group}' is also used by pipeline '{clash[0]}'; give the sink its own",
            )


def _check_columns(table: StreamingTable, schema: dict[str, Any], at: Callable[..., None]) -> None:
    fields = _schema_fields(schema)
    known = [*fields, *METADATA_COLUMNS]
    for i, column in enumerate(table.order_by):
        if column not in known:
            at(
                "order_by",
                i,
                msg=f"order_by column '{column}' is not a field of the topic's schema ({', '.join(fields)})",
            )
    event_time = event_time_of(table, schema)
    if table.event_time and (table.event_time not in fields or not is_timestamp(fields[table.event_time])):
        at(
            "event_time",
            msg=f"event_time '{table.event_time}' is not a timestamp field of the topic's schema",
        )
    if table.partition_by in ("day", "month") and event_time is None:
        at("partition_by", msg=f"partition_by {table.partition_by} needs a timestamp field in the schema")
    elif table.partition_by not in PARTITION_KEYWORDS and table.partition_by not in known:
        at(
            "partition_by",
            msg=f"partition_by '{table.partition_by}' is neither day, month, none nor a column",
        )
    if table.ttl_days is not None and event_time is None:
        at("ttl_days", msg="ttl_days needs a timestamp field in the schema (event_time)")
    for i, column in enumerate(table.low_cardinality or []):
        if column not in fields:
            at(
                "low_cardinality",
                i,
                msg=f"low_cardinality column '{column}' is not a field of the topic's schema",
            )
