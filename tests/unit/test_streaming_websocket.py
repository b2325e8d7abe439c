"""Parsing feed messages, and the websocket input's reconnect/resubscribe loop (local server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from flagship_avro import OPTION_TRADES
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tradesignals_dagster.registry.models import (
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
)
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.inputs import InputContext, InputFailure, build_input
from tradesignals_dagster.streaming.websocket import FeedFormat, WebsocketInput, parse_message


def test_single_object_and_list() -> None:
    assert parse_message('{"a": 1}').records == [{"a": 1}]
    assert parse_message(b'[{"a": 1}, {"a": 2}]').records == [{"a": 1}, {"a": 2}]


def test_floats_are_read_exactly() -> None:
    assert parse_message('{"price": 1.1}').records == [{"price": Decimal("1.1")}]


def test_bad_messages_become_failures_in_place() -> None:
    batch = parse_message('[{"a": 1}, 5, {"a": 2}]')
    assert batch.records[0] == {"a": 1} and batch.records[2] == {"a": 2}
    assert isinstance(batch.records[1], InputFailure) and "int" in batch.records[1].error
    bad = parse_message("nope{")
    assert len(bad.failures) == 1 and bad.failures[0].raw == "nope{" and "not JSON" in bad.failures[0].error


def test_envelope_type_filter_and_field_map() -> None:
    fmt = FeedFormat(data_key="data", type_field="type", type_value="trades", field_map={"px": "price"})
    assert parse_message('{"type": "heartbeat"}', fmt).records == []
    assert parse_message('{"type": "trades", "data": {"px": "1.5", "s": 1}}', fmt).records == [
        {"price": "1.5", "s": 1}
    ]
    msg = '[{"type": "trades", "data": [{"px": 1}, "x"]}, {"type": "ack"}]'
    records = parse_message(msg, fmt).records
    assert records[0] == {"price": 1} and isinstance(records[1], InputFailure)


def _ctx(spec: StreamingPipelineInput) -> InputContext:
    pipe = StreamingPipeline(key="ws", input=spec, output=StreamingPipelineOutput(topic_id="t"))
    return InputContext(pipeline=pipe, schema=OPTION_TRADES, base_dir=Path("."), stop=threading.Event())


def test_config_errors() -> None:
    with pytest.raises(PipelineConfigError, match=r"needs input\.url"):
        WebsocketInput(
            StreamingPipelineInput(type="websocket"), _ctx(StreamingPipelineInput(type="websocket"))
        )
    spec = StreamingPipelineInput(type="websocket", url="http://x")
    with pytest.raises(PipelineConfigError, match="ws://"):
        WebsocketInput(spec, _ctx(spec))


@pytest.fixture
def flaky_feed() -> Iterator[tuple[str, list[str]]]:
    """Each connection: read the subscription, send one message, then drop the connection."""
    subscriptions: list[str] = []
    counter = iter(range(100))

    def handler(ws: ServerConnection) -> None:
        n = next(counter)
        try:
            subscriptions.append(str(ws.recv(timeout=5)))
            ws.send(json.dumps({"n": n}))
        except ConnectionClosed:
            pass

    server = serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}", subscriptions
    server.shutdown()
    thread.join(5)


def test_reconnects_with_backoff_and_resubscribes(flaky_feed: tuple[str, list[str]]) -> None:
    url, subscriptions = flaky_feed
    spec = StreamingPipelineInput(
        type="websocket",
        url=url,
        subscribe={"op": "subscribe"},
        additional_metadata={"backoff_initial_s": "0.05", "backoff_max_s": "0.1"},
    )
    ctx = _ctx(spec)
    inp = build_input(ctx.pipeline, ctx)
    assert isinstance(inp, WebsocketInput)
    inp.open()
    try:
        got: list[dict] = []
        deadline = __import__("time").monotonic() + 10
        while len(got) < 3 and __import__("time").monotonic() < deadline:
            got += inp.read(100, 0.2).records
    finally:
        inp.close()
    assert [g["n"] for g in got[:3]] == [0, 1, 2]
    assert inp.reconnects >= 2
    assert all(json.loads(s) == {"op": "subscribe"} for s in subscriptions)
