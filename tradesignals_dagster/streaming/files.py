"""Record files for replays: Parquet, CSV and JSON Lines, read and written by extension.

Reading yields loosely typed rows (CSV gives strings, Parquet gives ``Decimal``/``datetime``);
:meth:`~tradesignals_dagster.streaming.records.RecordSchema.coerce` turns them into records. A
line that is not JSON comes out as a :class:`BadRow` so the caller can reject it and go on.

Writing takes runtime records (scaled-int decimals) and writes decimals exactly: as
``decimal128(precision, scale)`` in Parquet, as strings (``"1.2500"``) in CSV and JSON Lines;
timestamps are ``timestamp[ms, UTC]`` in Parquet and epoch integers elsewhere.

Files are handled defensively (:mod:`.fileio`): inputs must be regular files; CSV and JSON
Lines are UTF-8 with or without a byte-order mark, and a line in another encoding stops the
read naming that line; outputs are written to a temporary file renamed into place at the end,
so a failed write leaves nothing half-written. Errors name the path: :class:`RecordFileError`
(exit 2) for a file that cannot be used as given, :class:`OutputFileError` (exit 1) for one
that could not be written.
"""

from __future__ import annotations

import contextlib
import csv
import decimal
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal

from tradesignals_dagster.streaming.errors import OutputFileError, RecordFileError
from tradesignals_dagster.streaming.fileio import AtomicOutput, open_input, text_lines, write_error
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
    """The format a file's extension names; :class:`RecordFileError` for anything else."""
    suffix = Path(path).suffix.lower()
    try:
        return _SUFFIXES[suffix]
    except KeyError:
        known = ", ".join(sorted(_SUFFIXES))
        raise RecordFileError(f"{path}: unknown record file type {suffix!r}; use one of {known}") from None


def read_rows(path: Path | str, batch_size: int = 65_536) -> Iterator[Mapping[str, Any] | BadRow]:
    """Every row of the file, in file order (nothing is opened until the first row is asked for)."""
    path = Path(path)
    fmt = file_format(path)
    with open_input(path) as fh:
        if fmt == "parquet":
            yield from _read_parquet(fh, path, batch_size)
        elif fmt == "csv":
            yield from _read_csv(fh, path)
        else:
            yield from _read_jsonl(fh, path)


def _read_csv(fh: BinaryIO, path: Path) -> Iterator[Mapping[str, Any]]:
    reader = csv.DictReader(text_lines(fh, path))
    try:
        header = reader.fieldnames or []
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise RecordFileError(f"{path}: line 1: column(s) {', '.join(map(repr, twice))} appear twice")
        yield from reader
    except csv.Error as exc:
        raise RecordFileError(f"{path}: line {reader.line_num}: {exc}") from None


def _read_jsonl(fh: BinaryIO, path: Path) -> Iterator[Mapping[str, Any] | BadRow]:
    for n, line in enumerate(text_lines(fh, path), 1):
        text = line.strip()
        if not text:
            continue
        try:
            row = json.loads(text, parse_float=decimal.Decimal)
        except (ValueError, RecursionError) as exc:
            yield BadRow(text, f"line {n} is not JSON: {exc}", n)
            continue
        if isinstance(row, dict):
            yield row
        else:
            yield BadRow(text, f"line {n} is not a JSON object", n)


def _read_parquet(fh: BinaryIO, path: Path, batch_size: int) -> Iterator[Mapping[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(fh)
        for batch in pfile.iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise RecordFileError(f"{path}: not a readable Parquet file: {exc}") from None


class RecordWriter:
    """Writes runtime records to a Parquet, CSV or JSON Lines file (chosen by extension).

    The records go to a temporary file beside ``path``; :meth:`close` (or a ``with`` block that
    ends normally) renames it over ``path``, :meth:`discard` (or an exception) removes it.
    """

    def __init__(self, path: Path | str, schema: RecordSchema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.format = file_format(self.path)
        self.count = 0
        self._out: AtomicOutput | None = AtomicOutput(self.path)
        self._fh: IO[str] | None = None
        self._csv: Any = None
        self._parquet: Any = None
        self._arrow_schema: Any = None
        try:
            self._open(self._out)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise write_error(self.path, exc) from None
            raise

    def _open(self, out: AtomicOutput) -> None:
        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._arrow_schema = arrow_schema(self.schema)
            self._parquet = pq.ParquetWriter(out.binary, self._arrow_schema)
        else:
            self._fh = out.text(newline="" if self.format == "csv" else None)
            if self.format == "csv":
                self._csv = csv.DictWriter(
                    self._fh, fieldnames=self.schema.field_names, extrasaction="ignore"
                )
                self._csv.writeheader()

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records``."""
        rows = [self.schema.to_plain(r) for r in records]
        if not rows:
            return
        self.count += len(rows)
        try:
            self._write(rows)
        except Exception as exc:
            if _is_write_failure(exc):
                raise write_error(self.path, exc) from None
            raise

    def _write(self, rows: list[dict[str, Any]]) -> None:
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
        """Finish the file (Parquet footers are written here) and rename it into place."""
        out, self._out = self._out, None
        if out is None:
            return
        try:
            if self._parquet is not None:
                self._parquet.close()
                self._parquet = None
            out.commit()
        except Exception as exc:
            out.discard()
            if isinstance(exc, OutputFileError) or not _is_write_failure(exc):
                raise
            raise write_error(self.path, exc) from None
        finally:
            self._fh = None

    def discard(self) -> None:
        """Drop what was written; ``path`` is left as it was before."""
        out, self._out = self._out, None
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
            self._parquet = None
        self._fh = None
        if out is not None:
            out.discard()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _is_write_failure(exc: BaseException) -> bool:
    """OSError (disk full, I/O error) or one of Arrow's own errors."""
    if isinstance(exc, OSError):
        return True
    import pyarrow as pa

    return isinstance(exc, pa.ArrowException)


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
