"""Trade-to-bar latency at a steady trade rate, on the real broker.

Three processes, so that no two measured parts share a GIL:

* the pipeline: ``python pipelines/option_trade_volume_bars/app.py`` exactly as deployed
  (settings from ``TRADESIGNALS_*``), or, for the diagnostic variant, this module's
  ``pipeline`` command, which runs the same runner and ``build`` with ``--set`` overrides;
* the bar reader (a child process): assigned to the end of ``option_trades_aggs`` before the
  first trade is sent, it stamps each bar with the wall clock as soon as ``poll`` returns it;
* the trade writer (the bench process): paces synthetic trades at a fixed rate with the
  runtime's producer settings, writing the wall-clock millisecond of the ``produce`` call into
  the trade's ``timestamp``.

A bar's ``timestamp`` is its closing trade's timestamp, so ``arrival - bar.timestamp`` is the
time from producing the trade that closed the bar to the bar being readable downstream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.streaming_kafka import (
    BARS,
    BARS_PIPELINE,
    ROOT,
    Bench,
    TradeWriter,
    trade_producer,
    wait_until,
)
from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.streaming.metrics import metrics_port_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig


def _read_bars(conf: dict[str, str], schema: dict[str, Any], schema_id: int, out_path: Path) -> int:
    """Reader process: read bars from the end of the topic and stamp arrivals until SIGTERM,
    then write ``[[arrival_s, bar_timestamp_ms], ...]`` to ``out_path``."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    consumer = Consumer(
        {
            **conf,
            "group.id": "bench-latency-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    meta = consumer.list_topics(BARS, timeout=10).topics[BARS]
    tps = []
    for p in meta.partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(BARS, p), timeout=10)
        tps.append(TopicPartition(BARS, p, high))
    consumer.assign(tps)
    consumer.poll(0.5)  # connect and fetch before the first trade is sent
    print("ready", flush=True)
    arrivals: list[tuple[float, bytes]] = []
    poll, now = consumer.poll, time.time
    while not stopping:
        msg = poll(0.1)
        if msg is None:
            continue
        t = now()
        value = msg.value()
        if msg.error() is None and value is not None:
            arrivals.append((t, value))
    consumer.close()
    serde = AvroSerde(schema, schema_id, decimals="scaled_int")
    pairs = [(t, serde.decode(v)["timestamp"]) for t, v in arrivals]
    out_path.write_text(json.dumps(pairs))
    return 0


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def _pipeline_env(bench: Bench) -> dict[str, str]:
    s = bench.settings
    env = dict(os.environ)
    env.update(
        {
            "TRADESIGNALS_REGISTRY": str(s.registry),
            "TRADESIGNALS_PIPELINES_DIR": str(s.pipelines_dir),
            "TRADESIGNALS_STATE_DIR": str(s.state_dir),
            "TRADESIGNALS_BOOTSTRAP_SERVERS": s.resolved_bootstrap_servers(),
            "TRADESIGNALS_SCHEMA_REGISTRY_URL": s.resolved_schema_registry_url(),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        }
    )
    return env


def _scrape(bench: Bench) -> dict[str, float]:
    """The pipeline's own counters (Prometheus text) from its metrics port."""
    port_file = metrics_port_file(bench.settings.state_dir, BARS_PIPELINE)
    port = int(port_file.read_text().strip())
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, _, rest = line.partition("{")
        if name in ("tradesignals_batches_total", "tradesignals_records_in_total") or name.startswith(
            "tradesignals_batch_latency_seconds_"
        ):
            labels, _, value = rest.rpartition("} ")
            key = name if "le=" not in labels else f"{name}{{{labels.split('le=')[1].split(',')[0]}}}"
            out[key] = float(value)
    return out


def measure_latency(
    bench: Bench,
    *,
    rate: float = 20_000,
    warmup_s: float = 3.0,
    measure_s: float = 25.0,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run the pipeline process, pace trades at ``rate``/s, return latency percentiles (ms).

    Bars closed by trades produced during the first ``warmup_s`` are left out.
    """
    log_path = Path(bench.tmp) / f"latency-pipeline-{len(overrides or [])}.log"
    if overrides:
        argv = [sys.executable, "-m", "bench.streaming_latency", "pipeline"]
        argv += [f"--set={o}" for o in overrides]
    else:
        argv = [sys.executable, str(ROOT / "pipelines" / BARS_PIPELINE / "app.py")]
    port_file = metrics_port_file(bench.settings.state_dir, BARS_PIPELINE)
    port_file.unlink(missing_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=_pipeline_env(bench), stderr=log, stdout=log)
    pairs_path = Path(bench.tmp) / "latency-bars.json"
    pairs_path.unlink(missing_ok=True)
    spec = {
        "conf": bench.kafka_conf(),
        "schema": bench.app.schemas[BARS],
        "schema_id": bench.schema_ids[BARS],
        "out": str(pairs_path),
    }
    reader = subprocess.Popen(
        [sys.executable, "-m", "bench.streaming_latency", "read", json.dumps(spec)],
        cwd=ROOT,
        env=_pipeline_env(bench),
        stdout=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: b"partitions assigned" in log_path.read_bytes() or proc.poll() is not None,
            60,
            "the pipeline to join its group",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"the pipeline exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        assert reader.stdout is not None
        if reader.stdout.readline().strip() != b"ready":
            raise RuntimeError("the bar reader did not start")
        wait_until(port_file.is_file, 30, "the pipeline's metrics port")
        before = _scrape(bench)
        sent, measure_from_ms, elapsed = _pace(bench, rate, warmup_s, warmup_s + measure_s)
        time.sleep(2.0)  # let the last bars arrive
        after = _scrape(bench)
        reader.send_signal(signal.SIGTERM)
        reader.wait(60)
        pairs = json.loads(pairs_path.read_text())
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(10)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    latencies = sorted(t * 1000.0 - ts for t, ts in pairs if ts >= measure_from_ms)
    batches = after.get("tradesignals_batches_total", 0) - before.get("tradesignals_batches_total", 0)
    records = after.get("tradesignals_records_in_total", 0) - before.get("tradesignals_records_in_total", 0)
    lat_sum = after.get("tradesignals_batch_latency_seconds_sum", 0) - before.get(
        "tradesignals_batch_latency_seconds_sum", 0
    )
    return {
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "bars": len(latencies),
        "trades_sent": sent,
        "achieved_rate": sent / elapsed,
        "pipeline_batches": batches,
        "trades_per_batch": records / batches if batches else float("nan"),
        "batch_ms_avg": 1000.0 * lat_sum / batches if batches else float("nan"),
    }


def _pace(bench: Bench, rate: float, warmup_s: float, total_s: float) -> tuple[int, int, float]:
    """Produce trades at ``rate``/s for ``total_s`` s, timestamped with the produce wall clock.

    Returns (trades sent, first timestamp after the warm-up, seconds taken).
    """
    producer = trade_producer(bench)
    writer = TradeWriter(bench, producer)
    gen = OptionTradeGenerator(SyntheticConfig(symbols=50, seed=99))
    sent = 0
    measure_from_ms = int((time.time() + warmup_s) * 1000)
    t0 = time.perf_counter()
    clock = time.time
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= total_s:
            break
        due = int(elapsed * rate) - sent
        if due <= 0:
            time.sleep(0.0005)
            continue
        trades = gen.take(due)
        ms = int(clock() * 1000)
        for trade in trades:
            trade["timestamp"] = ms
        writer.write(trades)
        sent += due
    elapsed = time.perf_counter() - t0
    producer.flush(30)
    return sent, measure_from_ms, elapsed


def _pipeline_main(argv: list[str]) -> int:
    """``python -m bench.streaming_latency pipeline [--set k=v ...]``: the bars pipeline as its
    app.py runs it (same entry point, same ``build``), with config overrides for what-if runs."""
    from tradesignals_dagster.streaming.config import parse_overrides
    from tradesignals_dagster.streaming.entry import run_main

    sets = [a.split("=", 1)[1] for a in argv if a.startswith("--set=")]
    return run_main(pipeline_key=BARS_PIPELINE, overrides=parse_overrides(sets), tune_gc=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["pipeline"]:
        sys.exit(_pipeline_main(sys.argv[2:]))
    if sys.argv[1:2] == ["read"]:
        args = json.loads(sys.argv[2])
        sys.exit(_read_bars(args["conf"], args["schema"], args["schema_id"], Path(args["out"])))
    print("usage: python -m bench.streaming_latency pipeline [--set key=value ...] | read <json>")
    sys.exit(2)
