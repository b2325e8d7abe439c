"""Confluent-framed Avro messages into one Avro object container file, without decoding them.

Avro encodes a record as its fields' encodings one after another. So the record
``{_ts_id, _partition, _offset, <the writer's fields>}`` is the metadata's encoding followed by
the message's Avro body unchanged (the bytes after the 5-byte Confluent header). Building an
insert is therefore byte concatenation, and ClickHouse decodes the file (``FORMAT Avro``) in
C++: the Python side never decodes a row. The file carries its schema, so the server needs no
access to the schema registry, and the same code works against any ClickHouse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def container_file(schema: dict[str, Any], rows: Sequence[bytes]) -> bytes:
    """An Avro object container file (codec null, one block) of already encoded ``rows``."""
    sync = os.urandom(16)
    meta = {b"avro.schema": json.dumps(schema, separators=(",", ":")).encode(), b"avro.codec": b"null"}
    header = bytearray(b"Obj\x01")
    header += zigzag(len(meta))
    for key, value in meta.items():
        header += avro_string(key) + avro_string(value)
    header += zigzag(0) + sync
    body = b"".join(rows)
    return bytes(header) + zigzag(len(rows)) + zigzag(len(body)) + body + sync


def encode_row(ts_id: bytes, partition_prefix: bytes, offset: int, value: bytes) -> bytes:
    """One wrapped record: ``_ts_id``, ``_partition`` (pre-encoded), ``_offset``, the message body."""
    return zigzag(len(ts_id)) + ts_id + partition_prefix + zigzag(offset) + value[HEADER_BYTES:]
