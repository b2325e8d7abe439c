"""Fault drills on a three-broker cluster (RF 3, min ISR 2) with the flagship pipelines at load.

Each drill runs the ingest (synthetic trades at a steady rate) and the bars pipeline as real
processes, injects a broker failure while they work, and then proves from the topics
themselves that nothing was lost: every generated trade is on the trades topic, the bars are
exactly the bars of an uninterrupted offline replay, and any duplicate is an identical copy
with the same identity (removed by identity dedup). Neither pipeline may stop. What each drill
measured is printed and asserted.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import ClusterStack
from test_pipelines_support import (
    PipelineEnv,
    caught_up,
    decode_all,
    normalise_bars,
    read_jsonl,
    read_topic,
    scaled_to_str,
    start_process,
    stop_process,
    wait_for,
    wait_started,
    write_env,
)

from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.replication import replication_health
from tradesignals_dagster.streaming.files import write_records
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]

SYMBOLS, SEED, COUNT, RATE = 20, 41, 36_000, 3_000


def _log_tail(env: PipelineEnv, key: str) -> str:
    """The pipeline's own log lines (not librdkafka's), last ones first to read."""
    lines = (env.root / f"{key}.log").read_text(errors="replace").splitlines()
    return "\n".join(line[:400] for line in lines if not line.startswith("%"))[-3000:]


def _leader_moved(env: PipelineEnv, gone: int) -> bool:
    return _leader_of(env, env.bars) not in (gone, -1)


def _leader_of(env: PipelineEnv, topic: str, partition: int = 0) -> int:
    meta = KafkaAdmin(env.settings.kafka_config()).metadata()
    return int(meta.topics[topic].partitions[partition].leader)


def _run_drill(tmp_path: Path, stack: ClusterStack, inject: Any) -> dict[str, Any]:
    env = write_env(
        tmp_path / "env",
        stack,
        replication=(3, 2),
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {
                "symbols": str(SYMBOLS),
                "seed": str(SEED),
                "count": str(COUNT),
                "rate": str(RATE),
            },
        },
        bars_config={"bar_volume": 400, "split_trades": True, "runtime": {"checkpoint_interval_s": 1}},
    )
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    bars_proc = start_process(env, env.bars_pipeline)
    wait_started(env, env.bars_pipeline, bars_proc)
    ingest_proc = start_process(env, env.ingest)
    try:
        wait_started(env, env.ingest, ingest_proc)
        time.sleep(3)
        measured = inject(env)
        assert bars_proc.poll() is None, (
            f"the bars pipeline stopped ({bars_proc.returncode}): {_log_tail(env, env.bars_pipeline)}"
        )
        assert ingest_proc.wait(120) == 0, f"the ingest pipeline failed: {_log_tail(env, env.ingest)}"
        recovery_started = time.monotonic()
        wait_for(lambda: caught_up(env, group, env.trades), 120, what="the bars pipeline to catch up")
        measured["lag_recovered_s"] = round(time.monotonic() - recovery_started, 1)
        assert stop_process(bars_proc, signal.SIGTERM) == 0
    finally:
        for proc in (ingest_proc, bars_proc):
            if proc.poll() is None:
                proc.kill()
    return measured | _count(tmp_path, env)


def _count(tmp_path: Path, env: PipelineEnv) -> dict[str, Any]:
    """Messages produced, lost and duplicated, from the topics themselves."""
    trades = read_topic(env, env.trades, timeout=60)
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for msg in trades:
        assert msg.value is not None
        by_id[msg.headers["ts-id"]].add(msg.value)
    assert all(len(v) == 1 for v in by_id.values()), "a duplicated trade differs from its original"

    generated = list(
        OptionTradeGenerator(SyntheticConfig(symbols=SYMBOLS, seed=SEED, count=COUNT, rate=RATE))
    )
    write_records(tmp_path / "trades.csv", generated, RecordSchema(env.app.schemas[env.trades]))
    replay_file(
        env.app,
        env.bars_pipeline,
        tmp_path / "trades.csv",
        tmp_path / "bars.jsonl",
        pipelines_dir=env.settings.pipelines_dir,
    )
    expected = normalise_bars(list(read_jsonl(tmp_path / "bars.jsonl")))
    bar_msgs = read_topic(env, env.bars, timeout=60)
    bars = normalise_bars(scaled_to_str(decode_all(env, env.bars, bar_msgs)))
    bar_ids: dict[str, set[bytes]] = defaultdict(set)
    for msg in bar_msgs:
        assert msg.value is not None
        bar_ids[msg.headers["ts-id"]].add(msg.value)
    assert all(len(v) == 1 for v in bar_ids.values()), "a duplicated bar differs from its original"
    return {
        "trades_produced": len(trades),
        "trades_lost": COUNT - len(by_id),
        "trade_duplicates": len(trades) - len(by_id),
        "bars_expected": len(expected),
        "bars_lost": len(set(expected) - set(bars)),
        "bars_changed": sum(1 for k in expected if k in bars and bars[k] != expected[k]),
        "bar_duplicates": len(bar_msgs) - len(bar_ids),
    }


def _assert_nothing_lost(measured: dict[str, Any]) -> None:
    print(f"drill measured: {measured}")
    assert measured["trades_lost"] == 0
    assert measured["bars_lost"] == 0 and measured["bars_changed"] == 0
    assert measured["trades_produced"] >= COUNT


def test_drill_one_broker_killed_kept_down_and_brought_back(
    tmp_path: Path, cluster_stack: ClusterStack
) -> None:
    def inject(env: PipelineEnv) -> dict[str, Any]:
        victim = cluster_stack.cluster.node(2)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(14)  # down (past replica.lag.time.max.ms) while the pipelines keep working on two
        health = replication_health(KafkaAdmin(env.settings.kafka_config()), {env.trades})[env.trades]
        assert health.writable, (
            f"RF 3 / min ISR 2 must stay writable with one broker down: {health.summary()}"
        )
        degraded = bool(health.under_replicated)
        cluster_stack.cluster.start()
        wait_for(
            lambda: (
                not replication_health(KafkaAdmin(env.settings.kafka_config()), {env.trades})[
                    env.trades
                ].under_replicated
            ),
            90,
            what="the restarted broker to rejoin the ISR",
        )
        return {"isr_shrank": degraded, "broker_down_to_isr_full_s": round(time.monotonic() - killed, 1)}

    measured = _run_drill(tmp_path, cluster_stack, inject)
    _assert_nothing_lost(measured)
    assert measured["isr_shrank"], "the drill did not take a replica out of the ISR"


def test_drill_bars_leader_killed_repeatedly(tmp_path: Path, cluster_stack: ClusterStack) -> None:
    def inject(env: PipelineEnv) -> dict[str, Any]:
        leaders = []
        for _ in range(3):
            leader = _leader_of(env, env.bars)
            leaders.append(leader)
            node = cluster_stack.cluster.node(leader)
            assert node.pid is not None
            os.kill(node.pid, signal.SIGKILL)
            wait_for(partial(_leader_moved, env, leader), 60, what="a new leader")
            time.sleep(2)
            cluster_stack.cluster.start()
        return {"leaders_killed": leaders}

    measured = _run_drill(tmp_path, cluster_stack, inject)
    _assert_nothing_lost(measured)
