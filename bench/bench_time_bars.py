"""Time bars beside volume bars: pipeline throughput through the broker, and processor
throughput in process, on the same trades.

Through the broker (the issue's measure): a throwaway local stack with the flagship registry,
``option_trades`` pre-loaded with ``BENCH_TIME_BARS_KAFKA_TRADES`` synthetic Avro trades (default
1,000,000), then each pipeline as its ``app.py`` ships (``PipelineRunner``, in this process, its
own consumer group) reads all of them: decode, transform, encode, produce, checkpoint.

In process:

Both processors run through :class:`~tradesignals_dagster.streaming.transform.BatchTransformer`
(the runtime's and the replay's path) in batches of 10,000 over the same synthetic option
trades (200 symbols, ~5% out of order by up to 300 ms, a few later than the grace), with
positions as a Kafka input gives them. No broker: the figure is the transform's share of a
pipeline's cost, where the two pipelines differ; decode/encode/produce are the same for both.
Goal: time bars at least 0.8x the volume bars' throughput.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
from typing import Any

from bench.bench_streaming import run_product
from bench.common import Result
from bench.streaming_kafka import BARS_PIPELINE, preload_trades, running_stack
from tradesignals_dagster.streaming.gc_policy import tune_for_streaming
from tradesignals_dagster.streaming.processors.time_bars import OhlcvAggregation
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig
from tradesignals_dagster.streaming.transform import BatchTransformer
from tradesignals_dagster.streaming.windows import EventTimeWindows, WindowConfig

TRADES = 1_000_000
BATCH = 10_000
KAFKA_TRADES = int(os.environ.get("BENCH_TIME_BARS_KAFKA_TRADES", "1000000"))
TIME_BARS_PIPELINE = "option_trade_time_bars"


def through_kafka(count: int) -> list[Result]:
    """Both pipelines over the same ``count`` trades on a real broker; time bars first, so
    neither gains from the other warming the broker's page cache more."""
    load = os.getloadavg()[0]
    with running_stack() as bench:
        print(f"   pre-loading {count:,} trades (load average {load:.2f})", file=sys.stderr, flush=True)
        preload_trades(bench, count)
        rates: dict[str, tuple[float, int]] = {}
        for pipeline in (TIME_BARS_PIPELINE, BARS_PIPELINE):
            timing, made = run_product(bench, count, pipeline)
            gc.collect()
            rates[pipeline] = (timing.rate(), made)
            print(f"   {pipeline}: {timing.rate():,.0f} trades/s, {made:,} out", file=sys.stderr, flush=True)
    (timed, windows), (volume, bars) = rates[TIME_BARS_PIPELINE], rates[BARS_PIPELINE]
    ratio = timed / volume
    return [
        Result("time bars pipeline (1 s, Kafka in/out, 1 process)", "reference", timed, "trades/s", True,
               f"{count:,} trades -> {windows:,} bars; load avg {load:.1f} at start"),
        Result("time bars / volume bars pipeline (same broker, same trades)", ">= 0.8x", ratio, "x",
               ratio >= 0.8, f"time bars {timed:,.0f}/s vs volume bars {volume:,.0f}/s ({bars:,} bars)"),
    ]  # fmt: skip


def trades(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Synthetic option trades in arrival order, 20,000 per second of event time."""
    rnd = random.Random(seed)
    symbols = [f"SYM{i:03d}" for i in range(200)]
    out = []
    for i in range(n):
        ts = i // 20 - (rnd.randint(0, 300) if rnd.random() < 0.05 else 0)
        out.append({"symbol": rnd.choice(symbols), "timestamp": ts, "price": 10_000 + rnd.randint(-500, 500),
                    "size": rnd.randint(1, 20), "oi": i})  # fmt: skip
    return out


def rate(processor: Any, records: list[dict[str, Any]]) -> float:
    """Records per second through the transformer (best of 3 passes over fresh processors)."""
    best = 0.0
    for _ in range(3):
        proc = processor()
        transformer = BatchTransformer(proc)
        started = time.perf_counter()
        for start in range(0, len(records), BATCH):
            batch = records[start : start + BATCH]
            transformer.run(batch, [(0, start + i) for i in range(len(batch))])
            proc.dirty_keys()
        best = max(best, len(records) / (time.perf_counter() - started))
    return best


def run() -> list[Result]:
    """Measure both, through the broker and in process, against the 0.8x goal."""
    tune_for_streaming()  # the collector policy the pipeline and sink processes run with
    results = through_kafka(KAFKA_TRADES)
    records = trades(TRADES)
    volume = rate(lambda: VolumeBarAggregator(VolumeBarsConfig(bar_volume=500)), records)
    window = WindowConfig(size_ms=1000, grace_ms=200, late="drop")
    timed = rate(
        lambda: EventTimeWindows(window, OhlcvAggregation(4), key_field="symbol", time_field="timestamp"),
        records,
    )
    ratio = timed / volume
    return [
        *results,
        Result("volume bars processor", "reference", volume, "trades/s", True, f"{TRADES:,} trades"),
        Result("time bars processor (1 s, in process)", ">= 0.8x volume bars", timed, "trades/s",
               ratio >= 0.8,
               f"{ratio:.2f}x volume bars; grace 200 ms, late: drop"),
    ]  # fmt: skip
