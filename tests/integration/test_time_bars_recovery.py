"""The time-bars pipeline on the real broker: killed with SIGKILL while it works and restarted, it
publishes exactly the bars of an uninterrupted run - none lost, none changed (duplicates only
as identical copies with the same ts-id) - with its open windows and per-partition watermarks
restored from the state topic."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from test_pipelines_support import (
    PROJECT,
    PipelineEnv,
    caught_up,
    committed,
    decode_all,
    end_offsets,
    read_topic,
    start_process,
    stop_process,
    wait_for,
    wait_started,
    write_env,
)

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.testing import build_processor, run_records

# Enough trades that a kill soon after the first commit lands mid-stream even on a fast machine
# (the pipeline does tens of thousands of trades a second).
SYMBOLS, SEED, COUNT = 30, 31, 100_000
CONFIG = {
    "window": {"size_ms": 1000, "grace_ms": 200, "late": "dead_letter"},
    "runtime": {"batch_size": 250, "identity_fields": ["symbol", "window_start", "revision"]},
}


def add_time_bars(env: PipelineEnv) -> str:
    """Add a time-bars pipeline (the flagship's app.py) reading the env's trades; apply."""
    reg = env.settings.registry
    doc = yaml.safe_load((reg / "pipelines.yaml").read_text())
    topics, pipes = doc["StreamingApplication"]["Topics"], doc["StreamingApplication"]["Pipelines"]
    out, key = f"{env.prefix}_tbars", f"{env.prefix}_tbars_pipe"
    topics[out] = {**topics[env.trades], "value_schema_id": "option_ohlcv_1s"}
    pipes[key] = {
        "input": {"type": "kafka", "kafka_topic_id": env.trades, "consumer_group_id": f"{env.prefix}_tgroup"},
        "output": {"topic_id": out, "publisher_id": "tradesignals", "entitlements": ["internal"]},
    }
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    schema = yaml.safe_load((PROJECT / "registry" / "schemas" / "option_ohlcv_1s.yaml").read_text())
    schema.pop("subject", None)
    (reg / "schemas" / "option_ohlcv_1s.yaml").write_text(yaml.safe_dump(schema))
    folder = env.settings.pipelines_dir / key
    folder.mkdir()
    shutil.copy(PROJECT / "pipelines" / "option_trade_time_bars" / "app.py", folder / "app.py")
    (folder / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env.reload()
    plane = ControlPlane.from_settings(env.settings)
    plane.apply(plane.plan(env.app))
    env.extra["tbars"] = out
    return key


def test_sigkill_and_restart_gives_the_time_bars_of_an_uninterrupted_run(tmp_path: Path, stack: Any) -> None:
    seed = int(os.environ.get("TRADESIGNALS_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"kill schedule seed: {seed}")
    env = write_env(
        tmp_path / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": str(SYMBOLS), "seed": str(SEED), "count": str(COUNT)},
        },
    )
    key = add_time_bars(env)
    assert env.runner(env.ingest).run().records_out == COUNT
    group = env.app.pipelines[key].consumer_group()
    ends = end_offsets(env, env.trades)
    progress = [0]

    def advanced(proc: subprocess.Popen[bytes]) -> bool:
        done = sum(max(o, 0) for o in committed(env, group, env.trades).values())
        if done > progress[0]:
            progress[0] = done
            return True
        assert proc.poll() is None, f"pipeline exited early with {proc.returncode}"
        return False

    for _ in range(2):
        proc = start_process(env, key)
        wait_for(partial(advanced, proc), 60, interval=0.02, what="the pipeline to commit a batch")
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert progress[0] < sum(ends.values()), "the kill came after the last trade; use more trades"
    proc = start_process(env, key)
    wait_started(env, key, proc)
    wait_for(lambda: caught_up(env, group, env.trades), 90, what="the restarted pipeline to catch up")
    assert stop_process(proc, signal.SIGTERM) == 0

    # The uninterrupted run: the same processor over each partition's trades in offset order.
    trade_msgs = read_topic(env, env.trades)
    trades = decode_all(env, env.trades, trade_msgs)
    by_part: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for msg, trade in zip(trade_msgs, trades, strict=True):
        by_part[msg.partition].append((msg.offset, trade))
    reference = build_processor(key, registry=env.settings.registry, pipelines_dir=env.settings.pipelines_dir)
    expected: dict[tuple[str, int, int], dict[str, Any]] = {}
    for part, items in sorted(by_part.items()):
        items.sort(key=lambda x: x[0])
        result = run_records(reference, [t for _, t in items], positions=[(part, o) for o, _ in items])
        assert result.rejected == []
        expected |= {(b["symbol"], b["window_start"], b["revision"]): b for b in result.outputs}
    assert len(expected) > 300  # ~100 s of event time x 30 symbols, minus the still-open windows

    bar_msgs = read_topic(env, env.extra["tbars"])
    copies: dict[str, set[bytes]] = defaultdict(set)
    for msg in bar_msgs:
        assert msg.value is not None
        copies[msg.headers["ts-id"]].add(msg.value)
    assert all(len(values) == 1 for values in copies.values()), "a duplicate differs from its original"
    live = {
        (b["symbol"], b["window_start"], b["revision"]): b
        for b in decode_all(env, env.extra["tbars"], bar_msgs)
    }
    assert live == expected, "time bars lost or changed by the crashes"
    print(f"{len(expected)} bars, {len(bar_msgs) - len(copies)} duplicate message(s) after 2 kills")
