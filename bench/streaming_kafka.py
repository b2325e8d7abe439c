"""Shared pieces of the streaming benchmarks: a throwaway local stack, the flagship registry
applied to it, a topic pre-loaded with synthetic Avro trades, and the passthrough baseline.

Everything talks to the real local broker and schema registry that ``tradesignals stack up``
runs, started here in a temporary state directory and stopped at the end.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.kafka.client_logs import quiet_config
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.stack import stack_down, stack_up
from tradesignals_dagster.streaming.config import RuntimeOptions
from tradesignals_dagster.streaming.kafka_input import consumer_config
from tradesignals_dagster.streaming.outputs import build_headers, output_headers, producer_config
from tradesignals_dagster.streaming.preflight import registered_schema_id
from tradesignals_dagster.streaming.records import identity_function
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

ROOT = Path(__file__).resolve().parent.parent
BARS_PIPELINE = "option_trade_volume_bars"
INGEST_PIPELINE = "option_trades_ingest"
TRADES = "option_trades"
BARS = "option_trades_aggs"


@dataclass
class Bench:
    """A running stack with the flagship registry applied."""

    settings: Settings
    app: StreamingApplication
    tmp: Path
    schema_ids: dict[str, int] = field(default_factory=dict)

    def kafka_conf(self) -> dict[str, str]:
        """The confluent-kafka connection settings of the stack."""
        return self.settings.kafka_config()

    def serde(self, topic: str) -> AvroSerde:
        """The product's serde for ``topic`` (scaled-int decimals, as the runtime uses it)."""
        return AvroSerde(self.app.schemas[topic], self.schema_ids[topic], decimals="scaled_int")

    def create_topic(self, name: str, partitions: int = 4) -> None:
        """Create a plain topic (the bench's own outputs), waiting until it exists."""
        admin = AdminClient(dict(self.kafka_conf()))
        futures = admin.create_topics([NewTopic(name, partitions, 1)])
        for fut in futures.values():
            fut.result(30)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: high watermark}`` of ``topic``."""
        consumer = Consumer({**self.kafka_conf(), "group.id": "bench-watermarks"})
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            out = {}
            for p in meta.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                out[p] = high
            return out
        finally:
            consumer.close()


@contextmanager
def running_stack() -> Iterator[Bench]:
    """Start a local stack in a temporary state dir, apply the flagship registry, stop it after."""
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp_name:
        tmp = Path(tmp_name)
        base = Settings(state_dir=tmp / "state")
        try:
            info = stack_up(base)
            settings = Settings(
                state_dir=tmp / "state",
                registry=ROOT / "registry",
                pipelines_dir=ROOT / "pipelines",
                bootstrap_servers=info["bootstrap_servers"],
                schema_registry_url=info["schema_registry_url"],
            )
            app = load_application(settings.registry, settings.pipelines_dir)
            plane = ControlPlane.from_settings(settings)
            plane.apply(plane.plan(app))
            registry = SchemaRegistry(settings.schema_registry_config(), settings.request_timeout_s)
            ids = {
                topic: registered_schema_id(registry, app.subjects[topic], app.schemas[topic], topic)
                for topic in (TRADES, BARS)
            }
            yield Bench(settings, app, tmp, ids)
        finally:
            stack_down(base)


def trade_producer(bench: Bench) -> Producer:
    """A producer with the runtime's settings (idempotent, acks=all, lz4, linger 5 ms)."""
    return Producer(quiet_config(producer_config(bench.kafka_conf())))


class TradeWriter:
    """Encodes trades with the product's serde and produces them as the ingest pipeline does:
    key = symbol, headers = the ingest output's registry headers plus ``ts-id`` = trade_id."""

    def __init__(self, bench: Bench, producer: Producer) -> None:
        self.serde = bench.serde(TRADES)
        self.producer = producer
        self.base = output_headers(bench.app.pipelines[INGEST_PIPELINE].output)
        self.identity = identity_function([f["name"] for f in bench.app.schemas[TRADES]["fields"]])

    def write(self, trades: list[dict[str, Any]]) -> None:
        """Queue ``trades`` (blocking on a full queue)."""
        values = self.serde.encode_batch(trades)
        headers = build_headers(self.base, trades, values, self.identity)
        produce, poll = self.producer.produce, self.producer.poll
        for trade, value, hdrs in zip(trades, values, headers, strict=True):
            while True:
                try:
                    produce(TRADES, value, trade["symbol"].encode(), headers=cast(Any, hdrs))
                    break
                except BufferError:
                    poll(0.05)
        poll(0)


def preload_trades(bench: Bench, count: int, *, symbols: int = 50, seed: int = 7) -> dict[str, float]:
    """Produce ``count`` synthetic trades (the product's generator and serde) to option_trades."""
    started = time.perf_counter()
    producer = trade_producer(bench)
    writer = TradeWriter(bench, producer)
    gen = OptionTradeGenerator(SyntheticConfig(symbols=symbols, seed=seed, count=count))
    nbytes = 0
    while True:
        chunk = gen.take(20_000)
        if not chunk:
            break
        writer.write(chunk)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} trades were not acknowledged while pre-loading")
    total = sum(bench.end_offsets(TRADES).values())
    if total != count:
        raise RuntimeError(f"option_trades holds {total} messages, expected {count}")
    # average encoded size, for the README: one chunk re-encoded
    sample = OptionTradeGenerator(SyntheticConfig(symbols=symbols, seed=seed, count=10_000)).take(10_000)
    nbytes = sum(len(v) for v in writer.serde.encode_batch(sample))
    return {"seconds": time.perf_counter() - started, "avg_value_bytes": nbytes / len(sample)}


@dataclass
class Timing:
    """When a run's commits happened and how many messages each covered."""

    marks: list[tuple[float, int]] = field(default_factory=list)
    """``(perf_counter, cumulative messages)`` after each commit."""

    def mark(self, total: int) -> None:
        """Record that ``total`` messages are done (committed) now."""
        self.marks.append((time.perf_counter(), total))

    def rate(self) -> float:
        """Messages per second between the first mark (commit) and the last.

        Everything up to the first mark is left out of both numerator and denominator: it holds
        the group join, the first fetch and one-time warm-up, which are not throughput.
        """
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def seconds(self) -> float:
        """Wall time from the first mark to the last."""
        return self.marks[-1][0] - self.marks[0][0]


def run_passthrough(bench: Bench, count: int, out_topic: str, *, batch_size: int = 10_000) -> Timing:
    """The baseline: consume option_trades, produce every message unchanged, checkpoint.

    Same client settings as the runtime (``consumer_config``/``producer_config``), same batch
    size and the same delivery discipline: produce without waiting, and every
    ``checkpoint_interval_s`` (the runtime's default) flush, then commit the offsets synchronously.
    No decode, no processing, no encode: what moving the bytes through Kafka costs from Python.
    Timing marks are taken at each commit.
    """
    conf = consumer_config(bench.kafka_conf(), "bench-passthrough", "bench-passthrough-0", 15_000)
    consumer = Consumer(conf)
    producer = Producer(quiet_config(producer_config(bench.kafka_conf())))
    consumer.subscribe([TRADES])
    interval = RuntimeOptions().checkpoint_interval_s
    timing = Timing()
    done = 0
    offsets: dict[int, int] = {}
    last = time.monotonic()

    def checkpoint() -> None:
        if producer.flush(60):
            raise RuntimeError("passthrough: messages not acknowledged")
        consumer.commit(
            offsets=[TopicPartition(TRADES, p, o) for p, o in sorted(offsets.items())],
            asynchronous=False,
        )
        timing.mark(done)

    try:
        while done < count:
            msgs = consumer.consume(batch_size, 0.2)
            produce, poll = producer.produce, producer.poll
            for m in msgs:
                if m.error() is not None:
                    raise RuntimeError(f"passthrough consumer: {m.error()}")
                while True:
                    try:
                        produce(out_topic, m.value(), m.key(), headers=m.headers())
                        break
                    except BufferError:
                        poll(0.05)
                partition, offset = m.partition(), m.offset()
                assert partition is not None and offset is not None
                offsets[partition] = offset + 1
            poll(0)
            done += len(msgs)
            if offsets and (done >= count or time.monotonic() - last >= interval):
                checkpoint()
                last = time.monotonic()
    finally:
        consumer.close()
    return timing


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
