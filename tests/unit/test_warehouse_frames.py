"""The column-wise row encoder: its output decodes (with fastavro, as ClickHouse would) to the
identity, partition, offset and the writer's fields of every message, and equals the per-row
encoding whenever the varint widths happen to be minimal."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pyarrow as pa

from tradesignals_dagster.warehouse.frames import (
    avro_string,
    container_of,
    encode_row,
    encode_rows,
    wrapper_schema,
    zigzag,
)
from tradesignals_dagster.warehouse.inserter import _one_schema_id

WRITER = {
    "type": "record",
    "name": "Bar",
    "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}],
}


def _value(schema_id: int, n: int, s: str) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + zigzag(n) + avro_string(s.encode())


def test_rows_decode_to_every_message_with_its_position_and_identity() -> None:
    rng = random.Random(7)
    offsets = sorted(rng.sample(range(0, 1 << 42), 500))
    ids = [("x" * rng.randrange(0, 300)).encode() + str(i).encode() for i in range(500)]
    values = [_value(3, rng.randrange(-(1 << 62), 1 << 62), "é" * rng.randrange(0, 40)) for _ in range(500)]
    data = container_of(wrapper_schema(WRITER), 500, encode_rows(ids, 11, offsets, values))
    rows: list[Any] = list(fastavro.reader(io.BytesIO(data)))
    assert [r["_offset"] for r in rows] == offsets
    assert [r["_ts_id"].encode() for r in rows] == ids
    assert {r["_partition"] for r in rows} == {11}
    expected = [fastavro.schemaless_reader(io.BytesIO(v[5:]), WRITER) for v in values]
    assert [{"n": r["n"], "s": r["s"]} for r in rows] == expected


def test_minimal_widths_give_the_per_row_encoding_byte_for_byte() -> None:
    ids, offsets = [b"a", b"b", b"c"], [1, 2, 63]  # zig-zagged, all fit one byte
    values = [_value(1, i, "v") for i in range(3)]
    expected = b"".join(encode_row(i, zigzag(4), o, v) for i, o, v in zip(ids, offsets, values, strict=True))
    assert encode_rows(ids, 4, offsets, values) == expected


def test_one_schema_id_only_when_every_value_is_framed_with_it() -> None:
    same = [_value(9, i, "x") for i in range(3)]
    assert _one_schema_id(pa.array(same, pa.binary())) == 9
    assert _one_schema_id(pa.array([*same, _value(8, 1, "x")], pa.binary())) is None
    assert _one_schema_id(pa.array([*same, None], pa.binary())) is None
    assert _one_schema_id(pa.array([*same, b"\x00\x00"], pa.binary())) is None
    assert _one_schema_id(pa.array([b"\x01" + v[1:] for v in same], pa.binary())) is None
    assert _one_schema_id(pa.array([], pa.binary())) is None
