"""What an export needs to know about a dataset, resolved once from the registry.

:class:`DatasetSpec` is the small interface between the registry (``Datasets`` + ``Tables`` +
the topic's Avro schema) and the export, checks and Athena DDL: the ClickHouse table, its
event-time column, the exported columns with their Avro types, and the Arrow schema every
Parquet file of the dataset has. Types come from Avro: decimals stay decimals (precision and
scale kept), timestamp-millis/micros become UTC timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from tradesignals_dagster.datasets.errors import InvalidDatasetInput
from tradesignals_dagster.registry.datasets import StreamingDataset, table_columns
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.tables import event_time_of

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
}
METADATA_TYPES: dict[str, pa.DataType] = {
    "_ts_id": pa.string(),
    "_topic": pa.string(),
    "_partition": pa.int32(),
    "_offset": pa.int64(),
    "_inserted_at": pa.timestamp("ms", tz="UTC"),
}
"""Arrow types of the sink's metadata columns, when a dataset exports them."""


def arrow_type(avro: Any) -> tuple[pa.DataType, bool]:
    """The Arrow type of an Avro field type and whether it is nullable (``["null", T]``)."""
    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        if len(rest) != 1:
            raise InvalidDatasetInput(f"Avro union {avro} has no single Parquet type")
        return arrow_type(rest[0])[0], True
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro], False
        raise InvalidDatasetInput(f"Avro type '{avro}' has no Parquet mapping here")
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "decimal":
            precision = int(avro["precision"])
            dtype = pa.decimal128(precision, int(avro.get("scale", 0)))
            return (dtype if precision <= 38 else pa.decimal256(precision, int(avro.get("scale", 0)))), False
        if logical == "timestamp-millis":
            return pa.timestamp("ms", tz="UTC"), False
        if logical == "timestamp-micros":
            return pa.timestamp("us", tz="UTC"), False
        if logical == "date":
            return pa.date32(), False
        if avro.get("type") == "enum":
            return pa.string(), False
        return arrow_type(avro.get("type"))
    raise InvalidDatasetInput(f"Avro type {avro!r} has no Parquet mapping here")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset resolved against its table: what to select, how to sort and write it."""

    dataset: StreamingDataset
    table: str
    event_time: str
    columns: tuple[str, ...]
    avro_types: dict[str, Any]
    schema: pa.Schema

    @property
    def key(self) -> str:
        """The dataset id."""
        return self.dataset.key

    def sort_by(self) -> list[str]:
        """The declared order (the event time by default). Not extended to every column: rows
        equal on it may come in another order on a re-export (same rows, same file names), and
        sorting 5 M rows on all 12 columns cost ~65% more time than on (symbol, timestamp)."""
        return list(self.dataset.sort_by or [self.event_time])

    def last_day(self, now: datetime | None = None) -> date:
        """The last day that may be exported: ``end_date``, else today (UTC)."""
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        return min(self.dataset.end_date, today) if self.dataset.end_date else today

    def check_day(self, day: date, now: datetime | None = None) -> None:
        """Refuse a day outside ``start_date .. end_date`` (or in the future): exit 2."""
        if day < self.dataset.start_date or day > self.last_day(now):
            raise InvalidDatasetInput(
                f"Dataset '{self.key}': day {day} is outside its range {self.dataset.start_date} .. "
                f"{self.last_day(now)} (start_date, then end_date or today UTC); nothing was written."
            )

    @staticmethod
    def bounds(day: date) -> tuple[datetime, datetime]:
        """The UTC half-open interval [day 00:00, next day 00:00)."""
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start, start + timedelta(days=1)


def dataset_spec(app: StreamingApplication, dataset_id: str) -> DatasetSpec:
    """The resolved spec of ``dataset_id``; an unknown dataset or table is exit 2."""
    dataset = app.datasets.get(dataset_id)
    if dataset is None:
        known = ", ".join(sorted(app.datasets)) or "none declared"
        raise InvalidDatasetInput(f"Unknown dataset '{dataset_id}' (datasets: {known}).")
    table = app.tables.get(dataset.table_id)
    if table is None:
        raise InvalidDatasetInput(f"Dataset '{dataset_id}' names unknown table '{dataset.table_id}'.")
    fields = table_columns(app, dataset.table_id)
    event_time = event_time_of(table, app.schemas.get(table.topic_id) or {})
    if event_time is None:
        raise InvalidDatasetInput(f"Table '{table.key}' has no event-time column to partition by.")
    columns = tuple(dataset.columns or fields)
    arrow_fields = []
    for name in columns:
        if name in fields:
            dtype, nullable = arrow_type(fields[name])
        else:
            dtype, nullable = METADATA_TYPES[name], False
        arrow_fields.append(pa.field(name, dtype, nullable=nullable))
    return DatasetSpec(
        dataset=dataset,
        table=table.qualified(),
        event_time=event_time,
        columns=columns,
        avro_types={c: fields.get(c) for c in columns},
        schema=pa.schema(arrow_fields),
    )
