"""Confluent-framed Avro messages into one Avro object container file, without decoding them.

Avro encodes a record as its fields' encodings one after another. So the record
``{_ts_id, _partition, _offset, <the writer's fields>}`` is the metadata's encoding followed by
the message's Avro body unchanged (the bytes after the 5-byte Confluent header). Building an
insert is therefore byte concatenation, and ClickHouse decodes the file (``FORMAT Avro``) in
C++: the Python side never decodes a row. The file carries its schema, so the server needs no
access to the schema registry, and the same code works against any ClickHouse.

:func:`encode_rows` does that concatenation for a whole batch in Arrow and numpy (no per-row
Python): the two per-row integers (the identity's length and the offset) are written as
fixed-width varints - every byte but the last carries the continuation bit - which Avro's
decoders (ClickHouse's included) read like the minimal encoding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAGIC = 0
HEADER_BYTES = 5
METADATA_FIELDS: list[dict[str, Any]] = [
    {"name": "_ts_id", "type": "string"},
    {"name": "_partition", "type": "int"},
    {"name": "_offset", "type": "long"},
]


def zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of an int or long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def avro_string(data: bytes) -> bytes:
    """Avro's encoding of a string or bytes value."""
    return zigzag(len(data)) + data


@dataclass(frozen=True)
class Framed:
    """A message split into its schema id and Avro body, or the reason it is not Confluent Avro."""

    schema_id: int | None
    reason: str | None = None


def frame_of(value: bytes | None) -> Framed:
    """The writer schema id of a Confluent-framed value, or why the value is not one."""
    if value is None:
        return Framed(None, "the message has no value (a tombstone)")
    if len(value) < HEADER_BYTES:
        return Framed(None, f"the value has {len(value)} bytes, fewer than the 5-byte Confluent header")
    if value[0] != MAGIC:
        return Framed(None, f"the value starts with byte {value[0]}, not the Confluent magic byte 0")
    return Framed(int.from_bytes(value[1:HEADER_BYTES], "big"))


def wrapper_schema(writer: dict[str, Any]) -> dict[str, Any]:
    """The writer's record schema with the metadata fields in front (same name and namespace,
    so named types inside the writer's fields still resolve)."""
    return {**writer, "fields": [*METADATA_FIELDS, *writer.get("fields", [])]}


def container_of(schema: dict[str, Any], count: int, body: bytes) -> bytes:
    """An Avro object container file (codec null, one block) of ``count`` rows encoded in ``body``."""
    sync = os.urandom(16)
    meta = {b"avro.schema": json.dumps(schema, separators=(",", ":")).encode(), b"avro.codec": b"null"}
    header = bytearray(b"Obj\x01")
    header += zigzag(len(meta))
    for key, value in meta.items():
        header += avro_string(key) + avro_string(value)
    header += zigzag(0) + sync
    return b"".join((header, zigzag(count), zigzag(len(body)), body, sync))


def encode_row(ts_id: bytes, partition_prefix: bytes, offset: int, value: bytes) -> bytes:
    """One wrapped record: ``_ts_id``, ``_partition`` (pre-encoded), ``_offset``, the message body."""
    return zigzag(len(ts_id)) + ts_id + partition_prefix + zigzag(offset) + value[HEADER_BYTES:]


MAX_VALUE_BYTES = 1 << 40
"""Upper bound for slicing off the Confluent header (Arrow's slice needs an explicit stop)."""


def padded_varints(values: np.ndarray) -> pa.Array:
    """Avro longs of non-negative ``values``, zig-zagged, all as wide as the widest one needs."""
    doubled = values.astype(np.uint64) << np.uint64(1)
    top = int(doubled.max()) if len(doubled) else 0
    width = max(1, (top.bit_length() + 6) // 7)
    out = np.empty((len(doubled), width), dtype=np.uint8)
    for k in range(width):
        byte = (doubled >> np.uint64(7 * k)) & np.uint64(0x7F)
        out[:, k] = byte | np.uint64(0x80) if k < width - 1 else byte
    buffer = pa.py_buffer(out.tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(doubled), [None, buffer]).cast(
        pa.binary()
    )


def encode_rows(
    ts_ids: Sequence[bytes], partition: int, offsets: Sequence[int], values: pa.Array | Sequence[bytes]
) -> bytes:
    """The wrapped records of one partition's messages (all Confluent-framed), concatenated.

    Equal to ``b"".join(encode_row(...) for each message)``, computed column-wise.
    """
    if not offsets:
        return b""
    ids = pa.array(ts_ids, pa.binary())
    id_lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False)
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.binary())
    bodies = pc.binary_slice(values, HEADER_BYTES, MAX_VALUE_BYTES)
    joined = pc.binary_join_element_wise(
        padded_varints(id_lengths),
        ids,
        pa.scalar(zigzag(partition), pa.binary()),
        padded_varints(np.asarray(offsets, dtype=np.int64)),
        bodies,
        pa.scalar(b"", pa.binary()),
    )
    if isinstance(joined, pa.ChunkedArray):  # pragma: no cover - inputs are plain arrays
        joined = joined.combine_chunks()
    value_offsets = joined.buffers()[1]
    first, last = np.frombuffer(value_offsets, dtype=np.int32)[[joined.offset, joined.offset + len(joined)]]
    return joined.buffers()[2].to_pybytes()[first:last]
