"""Joining chdb's per-chunk answers into the one answer ClickHouse would send."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tradesignals_dagster.warehouse.streamed import ARROW_EOS, SpliceError, join_arrow_stream, streamable


def _ipc(table: pa.Table, compression: str | None = None) -> bytes:
    """One complete Arrow IPC stream, as chdb writes each chunk: schema, batches, end marker."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _chunks(compression: str | None = None) -> tuple[pa.Table, list[bytes]]:
    parts = [
        pa.table({"symbol": ["A", "B"], "price": pa.array([1.5, 2.5])}),
        pa.table({"symbol": ["C"], "price": pa.array([3.5])}),
        pa.table({"symbol": ["D", "E", "F"], "price": pa.array([4.5, 5.5, 6.5])}),
    ]
    return pa.concat_tables(parts), [_ipc(p, compression) for p in parts]


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_chunks_join_into_one_stream_with_every_row(compression: str | None) -> None:
    whole, chunks = _chunks(compression)
    joined = b"".join(join_arrow_stream(chunks))
    assert joined.endswith(ARROW_EOS) and joined.count(ARROW_EOS) == 1
    assert pa.ipc.open_stream(joined).read_all().equals(whole)


def test_a_schema_that_changes_between_chunks_is_refused() -> None:
    _, chunks = _chunks()
    other = _ipc(pa.table({"symbol": ["Z"], "price": pa.array([1], pa.int64())}))
    with pytest.raises(SpliceError, match="schema changed"):
        b"".join(join_arrow_stream([chunks[0], other]))


def test_no_chunks_join_into_nothing_and_garbage_is_refused() -> None:
    assert list(join_arrow_stream([])) == []
    with pytest.raises(SpliceError, match="IPC message"):
        list(join_arrow_stream([b"not arrow"]))


def test_only_selects_in_joinable_formats_are_streamed() -> None:
    assert streamable("SELECT", "ArrowStream") and streamable("WITH", "Native")
    assert streamable("SELECT", "JSONEachRow")
    assert not streamable("SELECT", "Parquet")  # chdb writes a whole file per chunk
    assert not streamable("SELECT", "RowBinaryWithNamesAndTypes")  # names repeated per chunk
    assert not streamable("SHOW", "Native")  # chdb cannot stream SHOW
    assert not streamable("INSERT", "Native")
