"""Record files for replays: Parquet, CSV and JSON Lines, read and written by extension.

Reading yields loosely typed rows (CSV gives strings, Parquet gives ``Decimal``/``datetime``);
:meth:`~tradesignals_dagster.streaming.records.RecordSchema.coerce` turns them into records. A
line that is not JSON comes out as a :class:`BadRow` so the caller can reject it and go on.

Writing takes runtime records (scaled-int decimals) and writes decimals exactly: as
``decimal128(precision, scale)`` in Parquet, as strings (``"1.2500"``) in CSV and JSON Lines;
timestamps are ``timestamp[ms, UTC]`` in Parquet and epoch integers elsewhere.
"""

from __future__ import annotations

import csv
import decimal
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from tradesignals_dagster.streaming.errors import InputError
from tradesignals_dagster.streaming.records import FieldSpec, RecordSchema

FileFormat = Literal["parquet", "csv", "jsonl"]
_SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


@dataclass(frozen=True)
class BadRow:
    """A row of the file that could not even be parsed (e.g. a line that is not JSON)."""

    raw: str
    error: str
    line: int


def file_format(path: Path | str) -> FileFormat:
    """The format a file's extension names; :class:`InputError` for anything else."""
    suffix = Path(path).suffix.lower()
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        raise InputError(f"{path}: unknown record file type {suffix!r}; use one of {known}") from None


def read_rows(path: Path | str, batch_size: int = 65_536) -> Iterator[Mapping[str, Any] | BadRow]:
    """Every row of the file, in file order."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt == "parquet":
        yield from _read_parquet(path, batch_size)
    elif fmt == "csv":
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
    else:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                try:
                    row = json.loads(text, parse_float=decimal.Decimal)
                except ValueError as exc:
                    yield BadRow(text, f"line {n} is not JSON: {exc}", n)
                    continue
                if isinstance(row, dict):
                    yield row
                else:
                    yield BadRow(text, f"line {n} is not a JSON object", n)


def _read_parquet(path: Path, batch_size: int) -> Iterator[Mapping[str, Any]]:
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    for batch in pfile.iter_batches(batch_size=batch_size):
        yield from batch.to_pylist()


class RecordWriter:
    """Writes runtime records to a Parquet, CSV or JSON Lines file (chosen by extension)."""

    def __init__(self, path: Path | str, schema: RecordSchema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.format = file_format(self.path)
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = None
        self._csv: Any = None
        self._parquet: Any = None
        self._arrow_schema: Any = None
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._arrow_schema = arrow_schema(schema)
            self._parquet = pq.ParquetWriter(str(self.path), self._arrow_schema)
        else:
            self._fh = self.path.open("w", newline="" if self.format == "csv" else None, encoding="utf-8")
            if self.format == "csv":
                self._csv = csv.DictWriter(self._fh, fieldnames=schema.field_names, extrasaction="ignore")
                self._csv.writeheader()

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records``."""
        rows = [self.schema.to_plain(r) for r in records]
        if not rows:
            return
        self.count += len(rows)
        if self._parquet is not None:
            self._parquet.write_table(_arrow_table(rows, self.schema, self._arrow_schema))
        elif self._csv is not None:
            self._csv.writerows(rows)
        else:
            assert self._fh is not None
            names = self.schema.field_names
            self._fh.writelines(
                json.dumps({k: r.get(k) for k in names}, default=_json_default) + "\n" for r in rows
            )

    def close(self) -> None:
        """Finish the file (Parquet footers are written here)."""
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def write_records(path: Path | str, records: Iterable[Mapping[str, Any]], schema: RecordSchema) -> int:
    """Write ``records`` to ``path`` in one go; returns how many were written."""
    with RecordWriter(path, schema) as writer:
        writer.write(records)
        return writer.count


def arrow_schema(schema: RecordSchema) -> Any:
    """The Arrow schema a record schema's Parquet files use."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _arrow_type(f), nullable=True) for f in schema.fields])


def _arrow_type(spec: FieldSpec) -> Any:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "bytes": pa.binary(),
        "int": pa.int32(),
        "long": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp-millis": pa.timestamp("ms", tz="UTC"),
        "timestamp-micros": pa.timestamp("us", tz="UTC"),
    }
    if spec.kind == "decimal":
        return (
            pa.decimal128(spec.precision, spec.scale)
            if spec.precision <= 38
            else pa.decimal256(spec.precision, spec.scale)
        )
    return simple.get(spec.kind, pa.string())


def _arrow_table(rows: list[dict[str, Any]], schema: RecordSchema, target: Any) -> Any:
    import pyarrow as pa

    arrays = []
    for spec, afield in zip(schema.fields, target, strict=True):
        values = [r.get(spec.name) for r in rows]
        if spec.kind in ("timestamp-millis", "timestamp-micros"):
            arrays.append(pa.array(values, type=pa.int64()).cast(afield.type))
        elif spec.kind == "other":
            arrays.append(pa.array([None if v is None else json.dumps(v, default=str) for v in values]))
        else:
            arrays.append(pa.array(values, type=afield.type))
    return pa.Table.from_arrays(arrays, schema=target)
