"""The generated flat-record encoder writes exactly fastavro's bytes, or refuses."""

from __future__ import annotations

import io
import math
import random
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from tradesignals_dagster.kafka.flat_encoder import flat_encoder
from tradesignals_dagster.kafka.serde import AvroSerde, EncodeError

HEADER = b"\x00\x00\x00\x00\x07"
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "fields": [
        {"name": "s", "type": "string", "doc": "a doc does not change the encoding"},
        {"name": "b", "type": "bytes"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": {"type": "long"}},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "nothing", "type": "null"},
        {"name": "ns", "type": ["null", "string"], "default": None},
        {"name": "ld", "type": ["double", "null"]},
        {"name": "nl", "type": ["null", "long"]},
    ],
}
EDGE_INTS = [0, 1, -1, 63, -64, 64, -65, 8191, -8193, 2**31 - 1, -(2**31)]
EDGE_LONGS = [*EDGE_INTS, 2**53, -(2**62), 2**63 - 1, -(2**63), 1_700_000_000_000]
EDGE_DOUBLES = [0.0, -0.0, 1.5, -2.25, math.inf, -math.inf, math.nan, 1e308, 5e-324, 0.1]
TEXTS = ["", "a", "SPY240119C00450000", "é", "日本語", "🚀" * 40, "x" * 300]


def _value(field: dict[str, Any], rng: random.Random) -> Any:
    kind = field["type"]
    if isinstance(kind, list):
        if rng.random() < 0.3:
            return None
        kind = next(k for k in kind if k != "null")
    kind = kind["type"] if isinstance(kind, dict) else kind
    return {
        "string": lambda: rng.choice(TEXTS),
        "bytes": lambda: rng.randbytes(rng.choice([0, 1, 70, 200])),
        "int": lambda: rng.choice(EDGE_INTS),
        "long": lambda: rng.choice([*EDGE_LONGS, rng.randint(-(2**63), 2**63 - 1)]),
        "float": lambda: rng.choice([0.0, -1.5, 3.25, 0.1, math.inf, 1e30]),
        "double": lambda: rng.choice([*EDGE_DOUBLES, rng.uniform(-1e6, 1e6)]),
        "boolean": lambda: rng.random() < 0.5,
        "null": lambda: None,
    }[kind]()


def _fastavro(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), record)
    return HEADER + buf.getvalue()


def test_random_records_encode_exactly_as_fastavro_does() -> None:
    encode = flat_encoder(SCHEMA, HEADER)
    assert encode is not None
    rng = random.Random(20261202)
    for _ in range(3000):
        record = {f["name"]: _value(f, rng) for f in SCHEMA["fields"]}
        assert encode(record) == _fastavro(SCHEMA, record), record


def test_longs_at_every_varint_table_boundary_encode_as_fastavro_does() -> None:
    """The encoder writes longs 14 bits per table lookup; each boundary between one, two, three
    lookups and the loop (zig-zagged 2**14, 2**28, 2**42), both signs, must give fastavro's bytes."""
    schema = {"type": "record", "name": "L", "fields": [{"name": "l", "type": "long"}]}
    encode = flat_encoder(schema, HEADER)
    assert encode is not None
    values = {0, -1, 2**63 - 1, -(2**63)}
    for bits in (6, 7, 13, 14, 20, 21, 27, 28, 34, 35, 41, 42, 48, 49, 62):
        for edge in (2**bits - 1, 2**bits, 2**bits + 1):
            values |= {edge, -edge}
    for value in sorted(values):
        record = {"l": value}
        assert encode(record) == _fastavro(schema, record), value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("d", 1),  # an int for a double: fastavro converts it; the fast path leaves that to it
        ("l", True),  # a bool is not a long
        ("i", 2**31),  # out of the int range
        ("l", 2**63),
        ("s", b"bytes"),
        ("b", "text"),
        ("flag", 1),
        ("nothing", 0),
        ("ns", 5),
        ("s", "\ud800"),  # a lone surrogate is not UTF-8
    ],
)
def test_values_without_one_unambiguous_encoding_are_refused(field: str, value: Any) -> None:
    encode = flat_encoder(SCHEMA, HEADER)
    assert encode is not None
    record = {f["name"]: _value(f, random.Random(1)) for f in SCHEMA["fields"]}
    record[field] = value
    with pytest.raises(Exception):  # noqa: B017 - any error: AvroSerde then takes the general path
        encode(record)
    record.pop(field)
    with pytest.raises(KeyError):
        encode(record)


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "enum", "name": "Side", "symbols": ["BUY", "SELL"]},
        {"type": "array", "items": "long"},
        {"type": "map", "values": "string"},
        ["null", "string", "long"],
        ["string", "long"],
        {"type": "string", "logicalType": "uuid"},
        {"type": "int", "logicalType": "date"},
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "long"}]},
    ],
)
def test_schemas_that_are_not_flat_get_no_generated_encoder(field_type: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
    assert flat_encoder(schema, HEADER) is None


def test_the_serde_gives_the_same_bytes_and_errors_with_and_without_it() -> None:
    """Through AvroSerde (decimals, defaults, its error messages), valid or not."""
    schema = {
        "type": "record",
        "name": "Bar",
        "fields": [
            {"name": "symbol", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "close",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 4},
            },
            {"name": "vwap", "type": ["null", "double"], "default": None},
            {"name": "count", "type": "int"},
        ],
    }
    fast = AvroSerde(schema, 7, decimals="scaled_int")
    general = AvroSerde(schema, 7, decimals="scaled_int")
    assert fast._fast is not None
    general._fast = None
    rng = random.Random(7)
    choices: dict[str, list[Any]] = {
        "symbol": ["A", "é", "", 5],
        "timestamp": [0, 1_700_000_000_123, -1, 2**63, 1.5],
        "close": [0, 12345, -99_999_999_9999, 10**12, None, "1.0"],
        "vwap": [None, 1.25, 3, math.nan],
        "count": [0, -(2**31), 2**31, True],
    }
    outcomes = set()
    for _ in range(2000):
        record = {k: rng.choice(v) for k, v in choices.items() if rng.random() > 0.05}
        results: list[bytes | str] = []
        for serde in (fast, general):
            try:
                results.append(serde.encode(record))
            except EncodeError as exc:
                results.append(f"EncodeError: {exc}")
        assert results[0] == results[1], record
        outcomes.add(isinstance(results[0], bytes))
    assert outcomes == {True, False}  # both valid and refused records were tried
