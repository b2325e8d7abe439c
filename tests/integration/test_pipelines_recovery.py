"""Crash recovery of the bars pipeline, as separate processes killed with SIGKILL.

The pipeline is started as the supervisor starts it (``python pipelines/<id>/app.py`` with the
TRADESIGNALS_* environment), killed at random points while it works through the trades, and
restarted. The bars published must be the bars of an uninterrupted run (the offline replay of
the same trades): none lost, none changed; duplicates only as exact copies with the same
identity in at-least-once mode, and none at all with exactly_once. A final SIGTERM must exit 0
with every input offset committed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from test_pipelines_support import (
    PipelineEnv,
    caught_up,
    committed,
    decode_all,
    end_offsets,
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

from tradesignals_dagster.streaming.files import write_records
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

SYMBOLS, SEED, COUNT = 30, 23, 40_000


@pytest.mark.parametrize(("delivery", "kills"), [("at_least_once", 3), ("exactly_once", 2)])
def test_sigkill_and_restart_gives_the_bars_of_an_uninterrupted_run(
    tmp_path: Path, stack: Any, delivery: str, kills: int
) -> None:
    seed = int(os.environ.get("TRADESIGNALS_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"kill schedule seed: {seed}")
    env: PipelineEnv = write_env(
        tmp_path / "env",
        stack,
        delivery=delivery,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": str(SYMBOLS), "seed": str(SEED), "count": str(COUNT)},
        },
        bars_config={"bar_volume": 400, "split_trades": True, "runtime": {"batch_size": 250}},
    )
    assert env.runner(env.ingest).run().records_out == COUNT
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    ends = end_offsets(env, env.trades)

    progress = [0]

    def advanced(proc: subprocess.Popen[bytes]) -> bool:
        done = sum(max(o, 0) for o in committed(env, group, env.trades).values())
        if done > progress[0]:
            progress[0] = done
            return True
        assert proc.poll() is None, f"pipeline exited early with {proc.returncode}"
        return False

    for _ in range(kills):
        proc = start_process(env, env.bars_pipeline)
        wait_for(partial(advanced, proc), 60, interval=0.02, what="the pipeline to commit a batch")
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert progress[0] < sum(ends.values()), "the kill came after the last trade; use more trades"

    proc = start_process(env, env.bars_pipeline)
    wait_started(env, env.bars_pipeline, proc)
    wait_for(lambda: caught_up(env, group, env.trades), 90, what="the restarted pipeline to catch up")
    assert stop_process(proc, signal.SIGTERM) == 0
    assert committed(env, group, env.trades) == ends

    generated = list(OptionTradeGenerator(SyntheticConfig(symbols=SYMBOLS, seed=SEED, count=COUNT)))
    write_records(tmp_path / "trades.csv", generated, RecordSchema(env.app.schemas[env.trades]))
    replay_file(
        env.app,
        env.bars_pipeline,
        tmp_path / "trades.csv",
        tmp_path / "bars.jsonl",
        pipelines_dir=env.settings.pipelines_dir,
    )
    expected = normalise_bars(list(read_jsonl(tmp_path / "bars.jsonl")))

    msgs = read_topic(env, env.bars)
    bars = scaled_to_str(decode_all(env, env.bars, msgs))
    copies: dict[str, set[bytes]] = defaultdict(set)
    for msg in msgs:
        assert msg.value is not None
        copies[msg.headers["ts-id"]].add(msg.value)
    assert all(len(values) == 1 for values in copies.values()), "a duplicate differs from its original"
    assert normalise_bars(bars) == expected, "bars lost or changed by the crashes"
    duplicates = len(msgs) - len(copies)
    print(f"{delivery}: {len(expected)} bars, {duplicates} duplicate message(s) after {kills} kill(s)")
    if delivery == "exactly_once":
        assert duplicates == 0
