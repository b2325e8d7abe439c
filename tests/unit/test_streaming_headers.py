"""Message headers, record identity and dead-letter values."""

from __future__ import annotations

import hashlib

from tradesignals_dagster.registry.models import StreamingPipelineOutput
from tradesignals_dagster.streaming.outputs import (
    IDENTITY_HEADER,
    build_headers,
    dead_letter_value,
    dlq_headers,
    output_headers,
)
from tradesignals_dagster.streaming.records import identity_function


def test_output_headers_from_the_registry() -> None:
    out = StreamingPipelineOutput(
        topic_id="bars",
        publisher_id="tradesignals",
        dataset_id="option_volume_bars",
        entitlements=["internal", "opra-realtime"],
        additional_metadata=[["region", "us-east-1"], ["tier", 2]],
    )
    assert output_headers(out) == [
        ("publisher_id", "tradesignals"),
        ("dataset_id", "option_volume_bars"),
        ("entitlements", "internal,opra-realtime"),
        ("region", "us-east-1"),
        ("tier", "2"),
    ]
    assert output_headers(StreamingPipelineOutput(topic_id="t")) == []


def test_identity_rules() -> None:
    bar = identity_function(["symbol", "sequence", "open"])
    assert bar is not None and bar({"symbol": "S", "sequence": 4}) == "S:4"
    trade = identity_function(["trade_id", "symbol"])
    assert trade is not None and trade({"trade_id": "T1", "symbol": "S"}) == "T1"
    assert identity_function(["x", "y"]) is None
    custom = identity_function(["symbol", "sequence"], lambda r: "mine")
    assert custom is not None and custom({}) == "mine"


def test_build_headers_adds_the_identity() -> None:
    base = [("publisher_id", "p")]
    records = [{"symbol": "A", "sequence": 0}, {"symbol": "A", "sequence": 1}]
    headers = build_headers(base, records, [b"v0", b"v1"], identity_function(["symbol", "sequence"]))
    assert headers == [
        [("publisher_id", "p"), (IDENTITY_HEADER, "A:0")],
        [("publisher_id", "p"), (IDENTITY_HEADER, "A:1")],
    ]
    hashed = build_headers([], [{"x": 1}], [b"value"], None)
    assert hashed == [[(IDENTITY_HEADER, hashlib.blake2b(b"value", digest_size=16).hexdigest())]]


def test_dlq_headers_and_values() -> None:
    headers = dict(
        dlq_headers(
            pipeline="bars",
            error="x" * 5000,
            error_type="DecodeError",
            stage="decode",
            source="t",
            partition=2,
            offset=17,
        )
    )
    assert (
        headers["source_topic"] == "t"
        and headers["source_partition"] == "2"
        and headers["source_offset"] == "17"
    )
    assert headers["stage"] == "decode" and headers["pipeline"] == "bars" and len(headers["error"]) == 4000
    assert dead_letter_value(b"raw") == b"raw" and dead_letter_value(None) is None
    assert dead_letter_value("text") == b"text"
    assert dead_letter_value({"a": 1}) == b'{"a":1}'
