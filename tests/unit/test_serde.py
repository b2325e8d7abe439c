"""Unit tests of the Confluent-framed Avro serde and the key serializers (no broker needed)."""

from __future__ import annotations

import copy
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import (
    DoubleSerializer,
    IntegerSerializer,
    MessageField,
    SerializationContext,
    StringSerializer,
)
from flagship_avro import OPTION_TRADES, OPTION_TRADES_AGGS, option_trades

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.serde import (
    AvroSerde,
    DecodeError,
    EncodeError,
    SchemaMismatchError,
    SerdeError,
    key_deserializer,
    key_serializer,
)

TS = 1_737_072_000_123  # 2025-01-17T00:00:00.123Z


def trade(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "trade_id": "t-1",
        "symbol": "AAPL  250117C00150000",
        "underlying": "AAPL",
        "timestamp": TS,
        "price": Decimal("12.3400"),
        "size": 7,
        "oi": 1500,
    }
    rec.update(changes)
    return rec


def bar(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "symbol": "AAPL  250117C00150000",
        "sequence": 3,
        "start_timestamp": TS,
        "timestamp": TS + 5,
        "open": Decimal("1.0000"),
        "high": Decimal("1.5000"),
        "low": Decimal("0.9000"),
        "close": Decimal("1.2500"),
        "volume": 100,
        "vwap": 1.2345,
        "trade_count": 4,
        "oi": 20,
        "price": Decimal("1.2500"),
    }
    rec.update(changes)
    return rec


# -- round trips -------------------------------------------------------------------------------


def test_round_trip_decimal_mode_gives_int_timestamps_and_quantized_decimals() -> None:
    serde = AvroSerde(OPTION_TRADES, 42)
    data = serde.encode(trade(price=Decimal("12.34")))
    assert data[0] == 0 and data[1:5] == (42).to_bytes(4, "big")
    out = serde.decode(data)
    assert out == trade()
    assert type(out["timestamp"]) is int
    assert str(out["price"]) == "12.3400"  # quantized to the declared scale


def test_scaled_int_mode_writes_the_same_bytes_as_decimal_mode() -> None:
    dec = AvroSerde(OPTION_TRADES, 1, decimals="decimal")
    fast = AvroSerde(OPTION_TRADES, 1, decimals="scaled_int")
    for price in ("0", "0.0001", "-0.0001", "12.34", "-12.34", "99999999.9999", "-99999999.9999"):
        scaled = int(Decimal(price).scaleb(4))
        data = dec.encode(trade(price=Decimal(price)))
        assert fast.encode(trade(price=scaled)) == data
        assert fast.decode(data)["price"] == scaled
        assert dec.decode(data)["price"] == Decimal(price)


def test_aggs_round_trip_in_both_modes() -> None:
    dec = AvroSerde(OPTION_TRADES_AGGS, 7)
    fast = AvroSerde(OPTION_TRADES_AGGS, 7, decimals="scaled_int")
    data = dec.encode(bar())
    assert dec.decode(data) == bar()
    scaled = fast.decode(data)
    assert scaled["open"] == 10_000 and scaled["high"] == 15_000 and scaled["low"] == 9_000
    assert fast.encode(scaled) == data


def test_batches_and_input_is_not_mutated() -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    records = [trade(trade_id=f"t{i}", size=i + 1) for i in range(5)]
    before = copy.deepcopy(records)
    decoded, failures = serde.decode_batch(serde.encode_batch(records))
    assert failures == [] and decoded == records and records == before


def test_int_is_accepted_for_a_decimal_and_defaults_fill_missing_fields() -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    rec = trade(price=12)
    del rec["oi"], rec["underlying"]
    out = serde.decode(serde.encode(rec))
    assert out["price"] == Decimal("12.0000") and out["oi"] == 0 and out["underlying"] == ""


def test_nullable_decimal_and_decimal_default() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": ["null", dict(OPTION_TRADES["fields"][4]["type"])]},
            {"name": "b", "type": dict(OPTION_TRADES["fields"][4]["type"]), "default": "\u0001"},
        ],
    }
    for mode, b in (("decimal", Decimal("0.0001")), ("scaled_int", 1)):
        serde = AvroSerde(schema, 1, decimals=mode)  # type: ignore[arg-type]
        assert serde.decode(serde.encode({"a": None})) == {"a": None, "b": b}
        assert serde.decode(serde.encode({"a": b, "b": b})) == {"a": b, "b": b}


def test_nested_timestamps_are_ints_too() -> None:
    schema = {
        "type": "record",
        "name": "Outer",
        "fields": [
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "at", "type": {"type": "array", "items": TS_MILLIS}}],
                },
            },
            {"name": "maybe", "type": ["null", TS_MILLIS], "default": None},
        ],
    }
    serde = AvroSerde(schema, 1)
    rec = {"inner": {"at": [TS, TS + 1]}, "maybe": TS}
    assert serde.decode(serde.encode(rec)) == rec


TS_MILLIS = {"type": "long", "logicalType": "timestamp-millis"}


# -- values that don't fit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        (Decimal("1.23456"), "more than 4 decimal places"),
        (Decimal("100000000"), "more than 12 digits"),  # 9 integer digits + 4 scale = 13
        (Decimal("-123456789.5"), "more than 12 digits"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("Infinity"), "not a finite number"),
        (1.5, "expected Decimal or int, got float"),
        ("1.5", "expected Decimal or int, got str"),
    ],
)
def test_decimals_that_do_not_fit_are_refused(price: Any, reason: str) -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    with pytest.raises(EncodeError, match=reason) as err:
        serde.encode(trade(price=price))
    assert "'price'" in str(err.value)
    assert isinstance(err.value, TradesignalsError)


def test_trailing_zeros_beyond_the_scale_are_exact_and_accepted() -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    assert serde.decode(serde.encode(trade(price=Decimal("12.340000"))))["price"] == Decimal("12.34")
    assert serde.decode(serde.encode(trade(price=Decimal("99999999.9999"))))["price"] == Decimal(
        "99999999.9999"
    )


@pytest.mark.parametrize(
    ("price", "reason"),
    [(10**12, "more than 12 digits"), (-(10**12), "more than 12 digits")],
)
def test_scaled_int_limits(price: Any, reason: str) -> None:
    serde = AvroSerde(OPTION_TRADES, 1, decimals="scaled_int")
    with pytest.raises(EncodeError, match=reason):
        serde.encode(trade(price=price))
    assert serde.decode(serde.encode(trade(price=10**12 - 1)))["price"] == 10**12 - 1
    with pytest.raises(EncodeError, match="expected a scaled int, got Decimal"):
        serde.encode(trade(price=Decimal("1.5")))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"size": 2**31}, r"'size': 2147483648 is outside the Avro range"),
        ({"size": -(2**31) - 1}, "outside the Avro range"),
        ({"size": 1.5}, "'size': expected int, got float"),
        ({"size": True}, "expected int, got bool"),
        ({"timestamp": datetime(2025, 1, 17, tzinfo=UTC)}, "'timestamp': expected int"),
        ({"timestamp": 2**63}, "outside the Avro range"),
        ({"symbol": 5}, "cannot encode a OptionTrades record"),
    ],
)
def test_other_values_that_do_not_fit_are_refused(changes: dict[str, Any], reason: str) -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    with pytest.raises(EncodeError, match=reason):
        serde.encode(trade(**changes))
    assert serde.decode(serde.encode(trade(size=2**31 - 1)))["size"] == 2**31 - 1


def test_missing_required_field_is_an_encode_error() -> None:
    rec = trade()
    del rec["size"]
    with pytest.raises(EncodeError, match="size"):
        AvroSerde(OPTION_TRADES, 1).encode(rec)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(SerdeError, match="record schema"):
        AvroSerde({"type": "string"}, 1)
    with pytest.raises(SerdeError, match="4-byte"):
        AvroSerde(OPTION_TRADES, 2**32)
    bad_type = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}
    with pytest.raises(SerdeError, match="invalid Avro schema R"):
        AvroSerde(bad_type, 1)
    no_precision = {"type": "bytes", "logicalType": "decimal"}
    with pytest.raises(SerdeError, match="invalid Avro schema R: KeyError: 'precision'"):
        AvroSerde({**bad_type, "fields": [{"name": "a", "type": no_precision}]}, 1)
    with pytest.raises(SerdeError, match="decimals must be"):
        AvroSerde(OPTION_TRADES, 1, decimals="float")  # type: ignore[arg-type]


# -- undecodable messages ------------------------------------------------------------------------


def test_decode_errors_are_clear() -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    good = serde.encode(trade())
    with pytest.raises(DecodeError, match="magic byte"):
        serde.decode(b"\x01" + good[1:])
    with pytest.raises(DecodeError, match="magic byte"):
        serde.decode(b"\x00\x00")
    with pytest.raises(DecodeError, match="cannot decode a OptionTrades message"):
        serde.decode(good[:-3])
    with pytest.raises(DecodeError, match="2 unread byte"):
        serde.decode(good + b"\x00\x00")
    with pytest.raises(SchemaMismatchError, match=r"schema id 9.*no writer_schema_resolver"):
        serde.decode(b"\x00\x00\x00\x00\x09" + good[5:])


def test_decode_batch_reports_failures_per_index() -> None:
    serde = AvroSerde(OPTION_TRADES, 1)
    good = serde.encode(trade())
    messages: list[bytes | None] = [good, b"junk", good, None, good[:-2], good]
    records, failures = serde.decode_batch(messages)
    assert [r is not None for r in records] == [True, False, True, False, False, True]
    assert records[0] == trade()
    assert [(f.index, f.data) for f in failures] == [(1, b"junk"), (3, None), (4, good[:-2])]
    assert all(isinstance(f.error, DecodeError) for f in failures)
    assert "tombstone" in str(failures[1].error)


# -- schema resolution ---------------------------------------------------------------------------


def test_reader_resolves_other_writer_schemas_and_caches_them() -> None:
    fields = copy.deepcopy(OPTION_TRADES["fields"])
    v2 = option_trades(fields=[*fields, {"name": "exchange", "type": "string", "default": "X"}])
    v0 = option_trades(fields=[f for f in fields if f["name"] not in ("oi", "underlying")])
    calls: list[int] = []

    def resolver(schema_id: int) -> dict[str, Any]:
        calls.append(schema_id)
        return {2: v2, 3: v0}[schema_id]

    reader = AvroSerde(OPTION_TRADES, 1, writer_schema_resolver=resolver)
    from_v2 = AvroSerde(v2, 2).encode({**trade(), "exchange": "CBOE"})
    old = trade()
    del old["oi"], old["underlying"]
    from_v0 = AvroSerde(v0, 3).encode(old)
    records, failures = reader.decode_batch([from_v2, from_v0, from_v2, from_v0])
    assert failures == []
    assert records[0] == trade()  # the writer's extra field is dropped
    assert records[1] == trade(oi=0, underlying="")  # the reader's defaults fill the gaps
    assert calls == [2, 3]


def test_writer_with_another_decimal_scale_is_a_schema_mismatch() -> None:
    fields = copy.deepcopy(OPTION_TRADES["fields"])
    fields[4]["type"]["scale"] = 2
    other = option_trades(fields=fields)
    reader = AvroSerde(OPTION_TRADES, 1, writer_schema_resolver=lambda _id: other)
    data = AvroSerde(other, 5).encode(trade(price=Decimal("12.34")))
    with pytest.raises(SchemaMismatchError, match=r"'price'.*scale 2.*expects 4"):
        reader.decode(data)


def test_writer_with_an_unreadable_type_change_is_a_schema_mismatch() -> None:
    fields = copy.deepcopy(OPTION_TRADES["fields"])
    fields[5]["type"] = "string"  # size: int -> string cannot be resolved
    other = option_trades(fields=fields)
    reader = AvroSerde(OPTION_TRADES, 1, writer_schema_resolver=lambda _id: other)
    data = AvroSerde(other, 5).encode(trade(size="7"))
    with pytest.raises(SchemaMismatchError, match="schema id 5 cannot be read as OptionTrades"):
        reader.decode(data)


def test_resolver_failure_is_a_per_message_schema_mismatch() -> None:
    def resolver(schema_id: int) -> dict[str, Any]:
        raise LookupError(f"subject has no id {schema_id}")

    reader = AvroSerde(OPTION_TRADES, 1, writer_schema_resolver=resolver)
    foreign = AvroSerde(OPTION_TRADES, 8).encode(trade())
    records, failures = reader.decode_batch([reader.encode(trade()), foreign])
    assert records[0] == trade() and records[1] is None
    assert isinstance(failures[0].error, SchemaMismatchError)
    assert "no id 8" in str(failures[0].error)


# -- interoperability with confluent-kafka -------------------------------------------------------


def test_interop_with_confluent_avro_serializer_and_deserializer() -> None:
    # new_client() returns confluent's in-process MockSchemaRegistryClient for mock:// URLs
    client = SchemaRegistryClient.new_client({"url": "mock://test"})
    schema_str = json.dumps(OPTION_TRADES)
    schema_id = client.register_schema("option_trades-value", Schema(schema_str, "AVRO"))
    ctx = SerializationContext("option_trades", MessageField.VALUE)
    theirs_ser = AvroSerializer(
        client, schema_str, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    theirs_de = AvroDeserializer(client)

    def from_registry(schema_id: int) -> dict[str, Any]:
        return json.loads(client.get_schema(schema_id).schema_str or "")

    ours = AvroSerde(OPTION_TRADES, schema_id, writer_schema_resolver=from_registry)

    rec = trade(price=Decimal("12.3400"))
    from_them = theirs_ser(rec, ctx)
    assert from_them is not None
    assert ours.decode(from_them) == rec
    from_us = ours.encode(rec)
    assert from_us == from_them  # byte-for-byte the same wire format

    back = theirs_de(from_us, ctx)
    assert back["price"] == Decimal("12.34")
    assert back["timestamp"] == datetime.fromtimestamp(TS / 1000, tz=UTC)
    assert {k: v for k, v in back.items() if k != "timestamp"} == {
        k: v for k, v in rec.items() if k != "timestamp"
    }

    # a scaled-int reader sees the confluent bytes too
    fast = AvroSerde(OPTION_TRADES, schema_id, decimals="scaled_int")
    assert fast.decode(from_them)["price"] == 123_400

    # a newer writer registered by confluent under another id is resolved through the registry
    fields = [*copy.deepcopy(OPTION_TRADES["fields"]), {"name": "venue", "type": "string"}]
    v2_ser = AvroSerializer(client, json.dumps(option_trades(fields=fields)))
    from_v2 = v2_ser({**rec, "venue": "CBOE"}, ctx)
    assert from_v2 is not None and from_v2[1:5] != from_us[1:5]
    assert ours.decode(from_v2) == rec


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("string", "AAPL  250117C00150000", b"AAPL  250117C00150000"),
        ("string", "é", "é".encode()),
        ("int", 1, b"\x00\x00\x00\x01"),
        ("int", -1, b"\xff\xff\xff\xff"),
        ("int", 2**31 - 1, b"\x7f\xff\xff\xff"),
        ("long", 1, b"\x00" * 7 + b"\x01"),
        ("long", -(2**63), b"\x80" + b"\x00" * 7),
        ("double", 1.0, bytes.fromhex("3ff0000000000000")),
        ("double", -2.5, struct.pack(">d", -2.5)),
    ],
)
def test_key_serializers(name: Any, value: Any, expected: bytes) -> None:
    assert key_serializer(name)(value) == expected
    assert key_deserializer(name)(expected) == value
    assert key_serializer(name)(None) is None
    assert key_deserializer(name)(None) is None


def test_key_serializers_match_confluent() -> None:
    ctx = SerializationContext("t", MessageField.KEY)
    for value in (0, 1, -1, 2**31 - 1, -(2**31)):
        assert key_serializer("int")(value) == IntegerSerializer()(value, ctx)
    for d in (0.0, 1.5, -1e300):
        assert key_serializer("double")(d) == DoubleSerializer()(d, ctx)
    assert key_serializer("string")("ü") == StringSerializer()("ü", ctx)


def test_key_serializer_errors() -> None:
    with pytest.raises(EncodeError, match="does not fit"):
        key_serializer("int")(2**31)
    with pytest.raises(EncodeError, match="expected a number"):
        key_serializer("long")("1")
    with pytest.raises(EncodeError, match="expected str"):
        key_serializer("string")(1)
    with pytest.raises(DecodeError, match="must be 8 bytes, got 4"):
        key_deserializer("long")(b"\x00\x00\x00\x01")
    with pytest.raises(DecodeError, match="not UTF-8"):
        key_deserializer("string")(b"\xff")
    with pytest.raises(SerdeError, match="unknown key type"):
        key_serializer("float")  # type: ignore[arg-type]
    with pytest.raises(SerdeError, match="unknown key type"):
        key_deserializer("uuid")  # type: ignore[arg-type]
