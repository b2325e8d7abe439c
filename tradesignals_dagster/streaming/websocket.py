"""The ``websocket`` input: a market feed over a WebSocket, the seed's default input type.

Behaviour:

* connects to ``input.url`` (``ws://`` or ``wss://``; environment proxies are not used),
  sends ``input.subscribe`` as JSON after every (re)connect, and reads messages in a
  background thread into a bounded buffer (backpressure: the reader waits when it is full);
* each message is JSON: one object or a list of objects, optionally inside an envelope
  (``additional_metadata.data_key``, e.g. ``data``); with ``type_field``/``type_value`` only
  messages of that type are records and the rest (acks, heartbeats) are ignored;
* keys are renamed with ``additional_metadata.field_map`` (``{"px": "price"}``) before the
  runtime coerces rows into the output schema; unparseable messages are dead-lettered;
* reconnects with exponential backoff (``backoff_initial_s`` 0.5 doubling to
  ``backoff_max_s`` 30, with jitter) and keeps the connection alive with pings every
  ``ping_interval_s`` (20), dropping it when a pong takes longer than ``ping_timeout_s`` (20).
"""

from __future__ import annotations

import decimal
import json
import queue
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradesignals_dagster.redact import redact_text, redact_url
from tradesignals_dagster.registry.models import StreamingPipelineInput
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.inputs import (
    InputBatch,
    InputContext,
    InputFailure,
    PipelineInput,
    metadata,
)


@dataclass(frozen=True)
class FeedFormat:
    """How records sit in a feed's messages."""

    data_key: str | None = None
    type_field: str | None = None
    type_value: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)


def parse_message(message: str | bytes, fmt: FeedFormat | None = None) -> InputBatch:
    """The rows in one feed message, with an :class:`InputFailure` for each part that is not a
    JSON object (in message order)."""
    fmt = fmt or FeedFormat()
    batch = InputBatch()
    try:
        data = json.loads(message, parse_float=decimal.Decimal)
    except ValueError as exc:
        batch.records.append(InputFailure(message, f"message is not JSON: {exc}"))
        return batch
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            batch.records.append(InputFailure(item, f"expected a JSON object, got {type(item).__name__}"))
            continue
        if fmt.type_field is not None and str(item.get(fmt.type_field)) != fmt.type_value:
            continue
        if fmt.data_key is not None and fmt.data_key in item:
            inner = item[fmt.data_key]
            for sub in inner if isinstance(inner, list) else [inner]:
                if isinstance(sub, dict):
                    batch.records.append(_renamed(sub, fmt.field_map))
                else:
                    batch.records.append(
                        InputFailure(
                            sub, f"expected a JSON object in {fmt.data_key!r}, got {type(sub).__name__}"
                        )
                    )
            continue
        batch.records.append(_renamed(item, fmt.field_map))
    return batch


def _renamed(row: dict[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    if not field_map:
        return row
    return {field_map.get(k, k): v for k, v in row.items()}


class WebsocketInput(PipelineInput):
    """Reads a WebSocket feed (see the module docstring)."""

    def __init__(self, spec: StreamingPipelineInput, ctx: InputContext) -> None:
        super().__init__(spec, ctx)
        if not spec.url:
            raise PipelineConfigError(f"pipeline {ctx.pipeline.key}: a websocket input needs input.url")
        if not spec.url.startswith(("ws://", "wss://")):
            raise PipelineConfigError(f"pipeline {ctx.pipeline.key}: input.url must be ws:// or wss://")
        self.url = spec.url
        field_map = spec.additional_metadata.get("field_map") or {}
        if not isinstance(field_map, dict):
            raise PipelineConfigError("input.additional_metadata.field_map must be a mapping")
        type_value = metadata(spec, "type_value", None, str)
        self.format = FeedFormat(
            data_key=metadata(spec, "data_key", None, str),
            type_field=metadata(spec, "type_field", None, str),
            type_value=type_value,
            field_map={str(k): str(v) for k, v in field_map.items()},
        )
        self.ping_interval_s = metadata(spec, "ping_interval_s", 20.0, float)
        self.ping_timeout_s = metadata(spec, "ping_timeout_s", 20.0, float)
        self.backoff_initial_s = metadata(spec, "backoff_initial_s", 0.5, float)
        self.backoff_max_s = metadata(spec, "backoff_max_s", 30.0, float)
        self.max_message_bytes = metadata(spec, "max_message_bytes", 16 * 1024 * 1024, int)
        self._buffer: queue.Queue[str | bytes] = queue.Queue(metadata(spec, "buffer_messages", 100_000, int))
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0
        self._reconnects = 0
        self.connected = threading.Event()

    def describe(self) -> str:
        """``websocket:<url>``."""
        return f"websocket:{redact_url(self.url)}"

    @property
    def reconnects(self) -> int:
        """Connections made after the first one."""
        return self._reconnects

    def backlog(self) -> int:
        """Messages received and not yet read."""
        return self._buffer.qsize()

    def open(self) -> None:
        """Start the reader thread (it connects, and reconnects, on its own)."""
        self._thread = threading.Thread(target=self._run, name="websocket-reader", daemon=True)
        self._thread.start()

    def _stopping(self) -> bool:
        return self._closing.is_set() or self.ctx.stop.is_set()

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        log = self.ctx.log
        backoff = self.backoff_initial_s
        while not self._stopping():
            try:
                with connect(
                    self.url,
                    proxy=None,
                    open_timeout=10,
                    ping_interval=self.ping_interval_s,
                    ping_timeout=self.ping_timeout_s,
                    close_timeout=2,
                    max_size=self.max_message_bytes,
                ) as ws:
                    self.connections += 1
                    if self.connections > 1:
                        self._reconnects += 1
                    if self.spec.subscribe is not None:
                        ws.send(json.dumps(self.spec.subscribe))
                    self.connected.set()
                    log.info(
                        "feed connected", extra={"url": redact_url(self.url), "connections": self.connections}
                    )
                    backoff = self.backoff_initial_s
                    while not self._stopping():
                        try:
                            message = ws.recv(timeout=0.25)
                        except TimeoutError:
                            continue
                        self._put(message)
            except (WebSocketException, OSError, TimeoutError) as exc:
                self.connected.clear()
                if self._stopping():
                    break
                log.warning(
                    "feed connection lost, reconnecting",
                    extra={
                        "url": redact_url(self.url),
                        "error": redact_text(f"{type(exc).__name__}: {exc}"),
                        "retry_in_s": backoff,
                    },
                )
            self.connected.clear()
            if self._stopping():
                break
            delay = backoff * (1.0 + random.random() * 0.25)
            self._closing.wait(delay)
            backoff = min(backoff * 2, self.backoff_max_s)

    def _put(self, message: str | bytes) -> None:
        while not self._stopping():
            try:
                self._buffer.put(message, timeout=0.25)
                return
            except queue.Full:
                continue

    def read(self, max_records: int, timeout_s: float) -> InputBatch:
        """Rows of the buffered messages (waits up to ``timeout_s`` for the first)."""
        batch = InputBatch()
        try:
            message = self._buffer.get(timeout=timeout_s)
        except queue.Empty:
            return batch
        while True:
            part = parse_message(message, self.format)
            batch.records.extend(part.records)
            if len(batch) >= max_records:
                return batch
            try:
                message = self._buffer.get_nowait()
            except queue.Empty:
                return batch

    def close(self) -> None:
        """Stop the reader thread and close the connection."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
