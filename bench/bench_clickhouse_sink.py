"""The ClickHouse sink on the real broker and the local endpoint (the stack as ``make dev`` runs it).

1. **Throughput**: 2 M volume bars (the flagship's option_trades_aggs schema, Confluent-framed
   Avro, a ts-id header each) are produced to the topic first; then the product's
   :class:`~tradesignals_dagster.warehouse.sink.TableSink` (in a thread of this process, registry
   batching: 200k rows, 1 s) runs until ``count()`` of the table reads 2 M: rows *queryable*,
   start-up included. Beside it, in the same run, a plain consume loop (the sink's consumer
   settings, 10k-message batches, nothing done with them) reads the same topic; goal >= 300k
   rows/s and >= 0.7x that loop.
2. **Latency**: trades are produced at 20,000/s for 10 s to option_trades while its sink runs; a
   poller queries the table every 50 ms for rows inserted since the last poll and records when
   each ts-id first became visible; p99 of visible - produced, goal < 2 s.
3. The endpoint's ``insert_arrow`` of 1 M bar rows on the same endpoint, so the sink's overhead
   over a bare columnar insert is visible.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.bench_clickhouse_endpoint import DDL, bars
from bench.common import Result
from bench.streaming_kafka import BARS, TRADES, Bench, running_stack
from tradesignals_dagster.streaming.gc_policy import tune_for_streaming
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.sink import TableSink

TOTAL = 2_000_000
RATE = 20_000
LATENCY_SECONDS = 10
GOAL_ROWS_S = 300_000
GOAL_RATIO = 0.7
GOAL_P99_S = 2.0


def _bar_values(bench: Bench, distinct: int = 1_000) -> list[bytes]:
    """``distinct`` encoded bars (values cycle; identity is in each message's ts-id header)."""
    serde = bench.serde(BARS)
    start = 1_767_000_000_000
    out = []
    for i in range(distinct):
        price = 1_000_000 + i * 25  # scaled by 10^4
        out.append(
            serde.encode(
                {
                    "symbol": f"SYM{i % 50}",
                    "sequence": i,
                    "start_timestamp": start + i * 1000,
                    "timestamp": start + i * 1000 + 999,
                    "open": price,
                    "high": price + 100,
                    "low": price - 100,
                    "close": price,
                    "volume": 100 + i,
                    "vwap": price / 10_000,
                    "trade_count": 1 + i % 20,
                    "oi": 1000 + i,
                    "price": price,
                }
            )
        )
    return out


def _produce_bars(bench: Bench) -> float:
    values = _bar_values(bench)
    producer = Producer({**bench.kafka_conf(), "linger.ms": 20, "queue.buffering.max.messages": 1_000_000})
    started = time.perf_counter()
    for i in range(TOTAL):
        while True:
            try:
                producer.produce(
                    BARS, value=values[i % len(values)], headers=[("ts-id", f"bar:{i}".encode())]
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise SystemExit("bars were not acknowledged")
    return time.perf_counter() - started


def _consume_rate(bench: Bench) -> float:
    """Messages/s of a plain consume loop over the whole bars topic (the sink's consumer settings)."""
    consumer = Consumer(
        {
            **bench.kafka_conf(),
            "group.id": f"bench-plain-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "queued.min.messages": 500_000,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([BARS])
    seen, started = 0, time.perf_counter()
    while seen < TOTAL:
        seen += sum(1 for m in consumer.consume(num_messages=10_000, timeout=1.0) if m.error() is None)
        if time.perf_counter() - started > 600:
            raise SystemExit(f"plain consume read only {seen} bars in 600 s")
    elapsed = time.perf_counter() - started
    consumer.close()
    return TOTAL / elapsed


def _start(sink: TableSink) -> threading.Thread:
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    return thread


def _sink_rate(bench: Bench) -> tuple[float, int]:
    """Rows/s from the sink's start to all bars queryable, and the inserts it took."""
    client = clickhouse_client(bench.settings)
    table = bench.app.tables[BARS]
    started = time.perf_counter()
    sink = TableSink(bench.app, table, bench.settings)
    thread = _start(sink)
    rows = 0
    while rows < TOTAL:
        time.sleep(0.2)
        rows = int(client.query(f"SELECT count() FROM {table.qualified()}").result_rows[0][0])
        if time.perf_counter() - started > 900:
            raise SystemExit(f"the sink inserted only {rows} bars in 900 s")
    elapsed = time.perf_counter() - started
    sink.stop("bench")
    thread.join(60)
    if rows != TOTAL:
        raise SystemExit(f"the table holds {rows} rows, not {TOTAL}: exactly-once broken")
    return TOTAL / elapsed, sink.inserter.inserts


def _latency(bench: Bench) -> tuple[float, float, int]:
    """p50 and p99 seconds from produce to visible at ``RATE`` trades/s, and rows seen."""
    table = bench.app.tables[TRADES]
    sink = TableSink(bench.app, table, bench.settings)
    thread = _start(sink)
    client = clickhouse_client(bench.settings)
    serde = bench.serde(TRADES)
    # event times of now: the table's TTL would drop rows of the generator's default start date
    # in its merges, before the poller sees them
    now_ms = int(time.time() * 1000)
    config = SyntheticConfig(symbols=50, seed=3, count=RATE * LATENCY_SECONDS, start_timestamp=now_ms)
    trades = OptionTradeGenerator(config).take(RATE * LATENCY_SECONDS)
    values = serde.encode_batch(trades)
    produced: dict[str, float] = {}
    visible: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        since = "1970-01-01 00:00:00.000"
        while not done.is_set():
            rows = client.query(
                f"SELECT _ts_id, toString(_inserted_at) FROM {table.qualified()} "
                "WHERE _inserted_at >= {s:String}",
                parameters={"s": since},
            ).result_rows
            now = time.time()
            for ts_id, inserted in rows:
                visible.setdefault(ts_id, now)
                since = max(since, inserted)
            time.sleep(0.05)

    time.sleep(3)  # the sink joins its group
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    producer = Producer({**bench.kafka_conf(), "linger.ms": 5})
    started = time.perf_counter()
    for i, value in enumerate(values):
        due = started + i / RATE
        while time.perf_counter() < due:
            time.sleep(0.0005)
        ts_id = f"lat:{i}"
        produced[ts_id] = time.time()
        producer.produce(TRADES, value=value, headers=[("ts-id", ts_id.encode())])
        producer.poll(0)
    producer.flush(60)
    deadline = time.monotonic() + 60
    while len(visible) < len(produced) and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    poller.join(10)
    sink.stop("bench")
    thread.join(60)
    # a trade not visible 60 s after the last was produced counts as infinitely late
    lat = sorted(visible.get(k, float("inf")) - produced[k] for k in produced)
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], sum(1 for k in produced if k in visible)


def _insert_arrow_rate(bench: Bench) -> float:
    client = clickhouse_client(bench.settings)
    client.command(DDL.format(name="default.bench_arrow"))
    data = bars(1_000_000)
    started = time.perf_counter()
    client.insert_arrow("default.bench_arrow", data)
    return 1_000_000 / (time.perf_counter() - started)


def run() -> list[Result]:
    """Produce, consume plainly, sink, measure latency and the bare insert, on one stack."""
    tune_for_streaming()  # the collector policy the pipeline and sink processes run with
    load_before = os.getloadavg()[0]
    with running_stack() as bench:
        produce_s = _produce_bars(bench)
        consume = _consume_rate(bench)
        sink, inserts = _sink_rate(bench)
        print(
            f"sink {sink:,.0f} rows/s ({inserts} inserts), plain consume {consume:,.0f} msg/s",
            file=sys.stderr,
        )
        arrow = _insert_arrow_rate(bench)
        print(f"insert_arrow {arrow:,.0f} rows/s", file=sys.stderr)
        p50, p99, seen = _latency(bench)
    load = os.getloadavg()[0]
    where = f"load avg {load_before:.1f} before, {load:.1f} after (2 shared cores)"
    info: dict[str, Any] = {"consume": consume, "ratio": sink / consume}
    return [
        Result(
            "ClickHouse sink, 2M bars topic -> rows queryable (one process)",
            f">= {GOAL_ROWS_S:,} rows/s and >= {GOAL_RATIO}x plain consume",
            sink,
            "rows/s",
            sink >= GOAL_ROWS_S and info["ratio"] >= GOAL_RATIO,
            f"plain consume loop over the same topic {consume:,.0f} msg/s ({info['ratio']:.2f}x); "
            f"{inserts} inserts; start-up included; 2M bars produced in {produce_s:.0f} s; {where}",
        ),
        Result(
            f"ClickHouse sink p99 bar produced -> row visible at {RATE:,}/s",
            f"< {GOAL_P99_S} s",
            p99,
            "s",
            p99 < GOAL_P99_S,
            f"p50 {p50:.3f} s over {seen:,} trades in {LATENCY_SECONDS} s (poll every 50 ms, "
            f"flush_interval_s 1.0); {where}",
        ),
        Result(
            "ClickHouse endpoint insert_arrow beside the sink, 1M bar rows",
            "reference",
            arrow,
            "rows/s",
            True,
            f"the sink reaches {sink / arrow:.2f}x a bare Arrow insert on the same endpoint; {where}",
        ),
    ]
