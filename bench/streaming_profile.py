"""Where the volume-bars pipeline spends its time: ``python -m bench.streaming_profile [N]``.

Not part of ``make bench`` (cProfile roughly doubles the run time). Starts its own stack,
pre-loads ``N`` trades (default 500,000) like the benchmark, then runs the product's runner
in this process twice over halves of the topic: once with per-phase wall clocks (the runner's
steps wrapped on the instance, no product code changed) and once under cProfile. Prints the
phase table and the top functions by own time.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.streaming_kafka import BARS_PIPELINE, preload_trades, running_stack
from tradesignals_dagster.streaming.runner import PipelineRunner


def _timed(totals: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - t0

    return wrapper


def _runner(bench: Any, stop_at: int) -> PipelineRunner:
    runner = PipelineRunner(bench.app, BARS_PIPELINE, bench.settings)
    observe = runner.metrics.observe_batch

    def hook(seconds: float, records_in: int, records_out: int, dlq: int, snapshots: int) -> None:
        observe(seconds, records_in, records_out, dlq, snapshots)
        if runner.metrics.records_in >= stop_at:
            runner.request_stop("profile")

    runner.metrics.observe_batch = hook  # type: ignore[method-assign]
    return runner


def phases(bench: Any, stop_at: int) -> tuple[dict[str, float], float, int]:
    """Run the runner with its steps timed; returns (seconds per phase, wall, records)."""
    totals: dict[str, float] = defaultdict(float)
    runner = _runner(bench, stop_at)
    setup = runner._setup

    def instrumented_setup() -> None:
        setup()
        kafka, output = runner._kafka, runner._output
        assert kafka is not None and output is not None and runner._out_serde is not None
        kafka.serde.decode_batch = _timed(totals, "decode (AvroSerde.decode_batch)", kafka.serde.decode_batch)  # type: ignore[method-assign]
        kafka.poll = _timed(totals, "poll (consume + decode)", kafka.poll)  # type: ignore[method-assign]
        kafka.commit = _timed(totals, "commit offsets (sync)", kafka.commit)  # type: ignore[method-assign]
        runner.transformer.run = _timed(totals, "process (VolumeBarAggregator)", runner.transformer.run)  # type: ignore[method-assign]
        serde = runner._out_serde
        serde.encode_batch = _timed(totals, "encode bars", serde.encode_batch)  # type: ignore[method-assign]
        output.produce = _timed(totals, "produce (bars, dlq, state)", output.produce)  # type: ignore[method-assign]
        output.flush = _timed(totals, "flush (x2: bars, state)", output.flush)  # type: ignore[method-assign]
        runner._produce_state = _timed(totals, "state snapshots (incl. produce)", runner._produce_state)  # type: ignore[method-assign]
        runner._handle = _timed(totals, "handle (all but poll)", runner._handle)  # type: ignore[method-assign]

    runner._setup = instrumented_setup  # type: ignore[method-assign]
    first: list[float] = []
    observe = runner.metrics.observe_batch

    def mark(seconds: float, records_in: int, records_out: int, dlq: int, snapshots: int) -> None:
        if not first:
            first.append(time.perf_counter())
        observe(seconds, records_in, records_out, dlq, snapshots)

    runner.metrics.observe_batch = mark  # type: ignore[method-assign]
    t0 = time.perf_counter()
    summary = runner.run()
    wall = time.perf_counter() - t0
    return dict(totals), wall, summary.records_in


def profile(bench: Any, stop_at: int, top: int = 25) -> str:
    """cProfile the runner loop; the top functions by own time as text."""
    runner = _runner(bench, stop_at)
    prof = cProfile.Profile()
    prof.enable()
    runner.run()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> int:
    """Pre-load, then time the phases over the first half and profile the second half."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    with running_stack() as bench:
        preload_trades(bench, count)
        totals, wall, n = phases(bench, count // 2)
        print(f"phases over {n:,} trades, wall {wall:.2f} s ({n / wall:,.0f} trades/s incl. start-up)")
        for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<36} {seconds:7.3f} s  {1e6 * seconds / n:6.2f} us/trade")
        print(profile(bench, count - n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
