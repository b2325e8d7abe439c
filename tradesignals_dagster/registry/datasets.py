"""The ``Datasets`` section: Parquet datasets exported daily from ClickHouse tables.

A dataset is named by its mapping key, reads one table of the ``Tables`` section (``table_id``)
and is written as ``<object store>/<dataset>/dt=YYYY-MM-DD/part-NNNNN.parquet``, one partition
per UTC day of the table's event time. Its columns, sort order, compression and row-group size
are here, so exports, checks and the Athena DDL all follow the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tradesignals_dagster.registry.tables import METADATA_COLUMNS, event_time_of, table_name_problem


def _check_name(value: str) -> str:
    reason = table_name_problem(value, "a dataset id")
    if reason is not None:
        raise ValueError(reason)
    return value


DatasetName = Annotated[str, AfterValidator(_check_name)]
"""A dataset id: usable as an S3 key part, an Athena table name and an asset key."""

Compression = Literal["zstd", "snappy", "gzip", "lz4", "none"]


class StreamingDataset(BaseModel):
    """One Parquet dataset exported from a table (``Datasets.<id>``; the id names the dataset)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    key: DatasetName = Field(description="Dataset id (the mapping key): the S3 folder and Athena table name.")
    table_id: str = Field(description="The table (a key of `Tables`) the dataset is exported from.")
    partition: Literal["daily"] = Field(
        "daily", description="One partition per UTC day of the table's event time (`dt=YYYY-MM-DD`)."
    )
    start_date: date = Field(description="The first day exported (YYYY-MM-DD); earlier days are refused.")
    end_date: date | None = Field(None, description="The last day exported, if the dataset is closed.")
    compression: Compression = Field("zstd", description="Parquet compression codec.")
    compression_level: int | None = Field(
        None, ge=-7, le=22, description="Codec level (zstd 1-22, gzip 1-9); the codec's default if unset."
    )
    columns: list[str] | None = Field(
        None,
        min_length=1,
        description="Columns exported, in this order; every field of the topic's schema if unset "
        "(the sink's metadata columns such as _offset only when named here).",
    )
    sort_by: list[str] | None = Field(
        None,
        description="Sort order of rows inside a partition (exported columns); the event time if unset.",
    )
    row_group_rows: int = Field(
        1_000_000,
        ge=1_000,
        le=10_000_000,
        description="Rows per Parquet row group (query engines like 64-512 MB groups; about 1 M bars).",
    )
    max_file_rows: int = Field(
        50_000_000,
        ge=10_000,
        le=1_000_000_000,
        description="A day with more rows is split into several files part-00000, part-00001, ...",
    )
    delay_minutes: int = Field(
        60,
        ge=0,
        le=7 * 24 * 60,
        description="How long after a day closes (UTC midnight) it is exported, so late rows are in.",
    )
    doc: str | None = Field(None, description="What the dataset holds, for its readers.")

    @model_validator(mode="after")
    def _range(self) -> StreamingDataset:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.row_group_rows > self.max_file_rows:
            raise ValueError("row_group_rows must not exceed max_file_rows")
        return self


def load_datasets(loc: Any, ctx: Any) -> dict[str, StreamingDataset]:
    """Validate the ``Datasets`` section at ``loc`` (a ``Located``), reporting through ``ctx``."""
    from tradesignals_dagster.registry.context import Located, validate_model, value_at

    out: dict[str, StreamingDataset] = {}
    value = None if loc is None else value_at(loc)
    if value is None:
        return out
    if not isinstance(value, dict):
        ctx.add(loc.doc, loc.path, "Datasets must be a mapping of dataset id to dataset")
        return out
    for key, raw in value.items():
        path = (*loc.path, key)
        report = ctx.reporter(loc.doc, path)
        reason = table_name_problem(str(key), "a dataset id")
        if reason is not None:
            report((), f"{reason} (it names the dataset's folder, Athena table and asset)")
            continue
        if not isinstance(raw, dict):
            report((), "a dataset must be a mapping")
            continue
        dataset = validate_model(StreamingDataset, {**raw, "key": str(key)}, {}, {}, report)
        if dataset is not None:
            out[str(key)] = dataset
            ctx.places[f"dataset:{key}"] = Located(loc.doc, path)
    return out


def table_columns(app: Any, table_id: str) -> dict[str, Any]:
    """The table's columns and their Avro types (its topic's fields), without metadata columns."""
    table = app.tables[table_id]
    schema = app.schemas.get(table.topic_id) or {}
    return {f["name"]: f["type"] for f in schema.get("fields", []) if isinstance(f, dict) and "name" in f}


def check_datasets(app: Any, places: dict[str, Any], add: Callable[..., None]) -> None:
    """Cross-check datasets against the tables, reporting with file, line and key."""
    from tradesignals_dagster.registry.normalise import suggest

    for key, dataset in app.datasets.items():
        place = places.get(f"dataset:{key}")

        def at(*sub: str | int, msg: str, place: Any = place) -> None:
            if place is None:
                add("registry", (), msg)
            else:
                add(place.doc, (*place.path, *sub), msg)

        table = app.tables.get(dataset.table_id)
        if table is None:
            declared = ", ".join(app.tables) or "none declared"
            at(
                "table_id",
                msg=f"unknown table '{dataset.table_id}'{suggest(dataset.table_id, list(app.tables))} "
                f"(tables: {declared})",
            )
            continue
        if table.topic_id not in app.schemas:
            continue  # the table's own check reports the missing schema
        fields = table_columns(app, dataset.table_id)
        known = [*fields, *METADATA_COLUMNS]
        for i, column in enumerate(dataset.columns or []):
            if column not in known:
                at(
                    "columns",
                    i,
                    msg=f"column '{column}' is not a column of table '{table.key}' ({', '.join(fields)})",
                )
        exported = dataset.columns or list(fields)
        for i, column in enumerate(dataset.sort_by or []):
            if column not in exported:
                at("sort_by", i, msg=f"sort_by column '{column}' is not an exported column")
        event_time = event_time_of(table, app.schemas[table.topic_id])
        if event_time is None:
            at("table_id", msg=f"table '{table.key}' has no event-time column to partition days by")
