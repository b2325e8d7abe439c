"""Streaming benchmarks on the real local broker: volume-bars throughput against a passthrough
baseline and against the same job in Quix Streams, and trade-to-bar latency at 20,000 trades/s.

One stack (Kafka 4.1 broker + schema registry) is started in a temporary state dir with the
flagship registry applied, ``option_trades`` is pre-loaded with ``TRADES`` synthetic Avro
trades, and every contender reads those same bytes with its own consumer group:

1. passthrough: confluent-kafka consume -> produce unchanged, flush + commit every 0.25 s (baseline);
2. the product: ``PipelineRunner`` with ``build`` from ``pipelines/option_trade_volume_bars/
   app.py`` (what that app.py runs), in this process;
3. Quix Streams: the same job (see :mod:`bench.streaming_quix`), twice: with the product's
   Avro serde inside Quix (de)serializers (framework cost only) and with Quix's own
   schema-registry Avro serde (what a Quix user would write);
4. latency: the pipeline as a process (``app.py``) fed at 20,000 trades/s (see
   :mod:`bench.streaming_latency`), then the same with checkpoints (state flush + offset
   commit) 20x rarer, as a diagnostic of how much of the tail they cause.

``BENCH_STREAMING_TRADES`` overrides the number of pre-loaded trades (default 1,500,000) and
``BENCH_STREAMING_LATENCY_S`` the measured latency window (default 25 s), for quick runs.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

from bench.common import Result, product_gc
from bench.streaming_kafka import (
    BARS_PIPELINE,
    Bench,
    Timing,
    preload_trades,
    run_passthrough,
    running_stack,
)
from bench.streaming_latency import measure_latency
from bench.streaming_quix import run_quix
from tradesignals_dagster.streaming.runner import PipelineRunner

TRADES = int(os.environ.get("BENCH_STREAMING_TRADES", "1500000"))
LATENCY_S = float(os.environ.get("BENCH_STREAMING_LATENCY_S", "25"))
RATE = 20_000
RARE_CHECKPOINTS = "runtime.checkpoint_interval_s=5"


def _say(msg: str) -> None:
    print(f"   {msg}", file=sys.stderr, flush=True)


def run_product(bench: Bench, count: int, pipeline: str = BARS_PIPELINE) -> tuple[Timing, int]:
    """``pipeline`` (by default volume bars) over ``count`` pre-loaded trades, in this process.

    Timing marks are taken after each of the runner's checkpoints (outputs acknowledged, then
    offsets committed), the last one after every trade; the runner is stopped once every trade
    has been handled. Returns the timing and the bar count.
    """
    runner = PipelineRunner(bench.app, pipeline, bench.settings)
    timing = Timing()
    observe, checkpoint = runner.metrics.observe_batch, runner._checkpoint

    def observe_and_stop(seconds: float, records_in: int, records_out: int, dlq: int, snapshots: int) -> None:
        observe(seconds, records_in, records_out, dlq, snapshots)
        if runner.metrics.records_in >= count:
            runner.request_stop("benchmark done")

    def checkpoint_and_mark(*, final: bool = False) -> int:
        snapshots = checkpoint(final=final)
        timing.mark(runner.metrics.records_in)
        return snapshots

    runner.metrics.observe_batch = observe_and_stop  # type: ignore[method-assign]
    runner._checkpoint = checkpoint_and_mark  # type: ignore[method-assign]
    summary = runner.run()
    if summary.records_in != count or summary.dlq:
        raise RuntimeError(f"{pipeline} read {summary.records_in} trades ({summary.dlq} dead letters)")
    return timing, summary.records_out


def run() -> list[Result]:
    """Measure and return the streaming benchmarks."""
    load = os.getloadavg()[0]
    results: list[Result] = []
    with running_stack() as bench:
        _say(f"stack up; pre-loading {TRADES:,} trades (load average {load:.2f})")
        pre = preload_trades(bench, TRADES)
        _say(f"pre-loaded in {pre['seconds']:.1f} s, {pre['avg_value_bytes']:.1f} B/value; passthrough")
        bench.create_topic("bench.passthrough")
        with product_gc():  # the policy the pipeline processes run with; Quix keeps the defaults
            passthrough = run_passthrough(bench, TRADES, "bench.passthrough")
            gc.collect()
            _say(f"passthrough {passthrough.rate():,.0f} msg/s; product")
            product, bars = run_product(bench, TRADES)
            gc.collect()  # the runner's clients, before the next contender
        _say(f"product {product.rate():,.0f} trades/s, {bars:,} bars; Quix Streams")
        quix: dict[str, dict[str, Any]] = {}
        for serde in ("product", "quix"):
            topic = f"bench.quix-{serde}-serde.option_trades_aggs"
            bench.create_topic(topic)
            quix[serde] = run_quix(bench, TRADES, topic, serde=serde)
            gc.collect()
            made = quix[serde]["bars"]
            _say(f"quix ({serde} serde) {quix[serde]['rate']:,.0f} trades/s, {made:,} bars")
            if made != bars:
                raise RuntimeError(f"Quix made {made} bars, the product {bars}: not the same job")
        _say(f"latency at {RATE:,} trades/s")
        shipped = measure_latency(bench, rate=RATE, measure_s=LATENCY_S)
        _say(f"latency p99 {shipped['p99_ms']:.1f} ms; again with {RARE_CHECKPOINTS}")
        tuned = measure_latency(bench, rate=RATE, measure_s=LATENCY_S, overrides=[RARE_CHECKPOINTS])
        _say(f"latency p99 {tuned['p99_ms']:.1f} ms; stopping the stack")

    prod_rate, pt_rate = product.rate(), passthrough.rate()
    common = f"{TRADES:,} trades, {bars:,} bars, up to the first checkpoint excluded"
    results.append(
        Result(
            "volume bars pipeline throughput (1 process, Avro in/out)",
            ">= 150,000 trades/s",
            prod_rate,
            "trades/s",
            prod_rate >= 150_000,
            f"{common}; {product.seconds():.1f} s; load avg {load:.1f} at start",
        )
    )
    ratio = prod_rate / pt_rate
    results.append(
        Result(
            "volume bars / passthrough (same broker, same bytes)",
            ">= 0.5x",
            ratio,
            "x",
            ratio >= 0.5,
            f"product {prod_rate:,.0f}/s vs passthrough {pt_rate:,.0f} msg/s "
            "(consume -> produce unchanged, flush + commit every 0.25 s like the runtime, same clients)",
        )
    )
    for serde, how in (
        ("product", "Quix (de)serializers wrapping the product's AvroSerde: framework cost only"),
        ("quix", "Quix's own schema-registry AvroDeserializer/AvroSerializer + Decimal/datetime conversion"),
    ):
        quix_rate = quix[serde]["rate"]
        vs_quix = prod_rate / quix_rate
        results.append(
            Result(
                f"volume bars / Quix Streams, same job ({serde} Avro serde)",
                ">= 3x",
                vs_quix,
                "x",
                vs_quix >= 3.0,
                f"product {prod_rate:,.0f}/s vs Quix {_quix_version()} {quix_rate:,.0f}/s; stateful apply "
                f"on Quix RocksDB state (changelog on), {how}; same bar count",
            )
        )
    results.append(_latency_result("trade->bar latency p99 at 20k trades/s (app.py as shipped)", shipped))
    results.append(
        _latency_result(f"diagnostic: same with {RARE_CHECKPOINTS}", tuned),
    )
    return results


def _latency_result(name: str, lat: dict[str, Any]) -> Result:
    return Result(
        name,
        "p99 < 50 ms",
        lat["p99_ms"],
        "ms",
        lat["p99_ms"] < 50.0,
        f"p50 {lat['p50_ms']:.1f} ms, max {lat['max_ms']:.1f} ms over {lat['bars']:,} bars "
        f"({LATENCY_S:.0f} s at {lat['achieved_rate']:,.0f} trades/s); pipeline batches "
        f"{lat['trades_per_batch']:,.0f} trades, {lat['batch_ms_avg']:.0f} ms poll-to-commit",
    )


def _quix_version() -> str:
    from importlib.metadata import version

    return version("quixstreams")


if __name__ == "__main__":
    from bench.common import table

    started = time.perf_counter()
    print(table(run()))
    print(f"({time.perf_counter() - started:.0f} s)")
