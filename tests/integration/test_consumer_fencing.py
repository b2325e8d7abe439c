"""A fenced static consumer is replaced inside the running pipeline, not by a crash.

When a group coordinator's broker dies, librdkafka loses the group session, rejoins under a new
member id for the same ``group.instance.id`` and then has its own in-flight commit refused as
FENCED_INSTANCE_ID, which it makes fatal (seen in the broker-kill drill). The same fatal error
is produced here on demand, on the session's broker: another consumer joins the bars pipeline's
group with the pipeline's own ``group.instance.id``. The pipeline must start a new member in
the same process, keep going and lose nothing; a process that keeps being fenced gives up.
"""

from __future__ import annotations

import signal
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
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
from tradesignals_dagster.streaming.runner import MAX_REJOINS
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig


def _intruder(env: PipelineEnv, group: str, instance_id: str) -> Consumer:
    """A consumer in the bars pipeline's group under the pipeline's own group.instance.id,
    polled until the group gave it the partitions (which fences the pipeline's member)."""
    consumer = Consumer(
        {
            **env.settings.kafka_config(),
            "group.id": group,
            "group.instance.id": instance_id,
            "enable.auto.commit": False,
            "session.timeout.ms": 10_000,
        }
    )
    assigned: list[int] = []
    consumer.subscribe([env.trades], on_assign=lambda c, ps: assigned.extend(p.partition for p in ps))
    deadline = time.monotonic() + 60
    while not assigned:
        assert time.monotonic() < deadline, "the intruder never got the partitions"
        consumer.poll(0.2)
    return consumer


def _log(env: PipelineEnv) -> str:
    return (env.root / f"{env.bars_pipeline}.log").read_text(errors="replace")


REJOINED = "starting a new group member in this process"


def _assigned_at_least(env: PipelineEnv, proc: subprocess.Popen[bytes], n: int) -> bool:
    return _log(env).count('"msg":"partitions assigned"') >= n or proc.poll() is not None


def test_a_fenced_consumer_is_replaced_in_process_and_nothing_is_lost(tmp_path: Path, stack: Any) -> None:
    env = write_env(
        tmp_path / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "10", "seed": "5", "count": "20000", "rate": "1000"},
        },
        bars_config={"bar_volume": 200, "runtime": {"checkpoint_interval_s": 0.5}},
    )
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    bars = start_process(env, env.bars_pipeline)
    ingest = start_process(env, env.ingest)
    intruder: Consumer | None = None
    try:
        wait_started(env, env.bars_pipeline, bars)
        wait_for(lambda: sum(committed(env, group, env.trades).values()) > 1000, 60, what="bars progress")

        intruder = _intruder(env, group, f"{env.bars_pipeline}-0")
        wait_for(lambda: REJOINED in _log(env) or bars.poll() is not None, 90, what="the pipeline to rejoin")
        assert bars.poll() is None, f"the bars pipeline exited ({bars.returncode}):\n{_log(env)[-3000:]}"
        intruder.close()  # fenced in its turn by the pipeline's new member
        intruder = None

        assert ingest.wait(120) == 0
        wait_for(lambda: caught_up(env, group, env.trades), 120, what="the bars pipeline to catch up")
        assert bars.poll() is None, f"the bars pipeline exited ({bars.returncode}):\n{_log(env)[-3000:]}"
        assert stop_process(bars, signal.SIGTERM) == 0, _log(env)[-3000:]
    finally:
        if intruder is not None:
            intruder.close()
        for proc in (bars, ingest):
            if proc.poll() is None:
                proc.kill()

    assert sum(end_offsets(env, env.trades).values()) == 20_000
    assert committed(env, group, env.trades) == end_offsets(env, env.trades)
    config = SyntheticConfig(symbols=10, seed=5, count=20_000, rate=1000)
    write_records(
        tmp_path / "trades.csv", list(OptionTradeGenerator(config)), RecordSchema(env.app.schemas[env.trades])
    )
    replay_file(
        env.app, env.bars_pipeline, tmp_path / "trades.csv", tmp_path / "bars.jsonl",
        pipelines_dir=env.settings.pipelines_dir,
    )  # fmt: skip
    expected = normalise_bars(list(read_jsonl(tmp_path / "bars.jsonl")))
    msgs = read_topic(env, env.bars, timeout=60)
    by_id: dict[str, set[bytes]] = {}
    for msg in msgs:
        assert msg.value is not None
        by_id.setdefault(msg.headers["ts-id"], set()).add(msg.value)
    assert all(len(v) == 1 for v in by_id.values()), "a bar sent twice differs from its first copy"
    got = normalise_bars(scaled_to_str(decode_all(env, env.bars, msgs)))
    assert expected and got == expected, (len(got), len(expected))
    log = _log(env)
    assert log.count(REJOINED) >= 1 and "Traceback" not in log, log[-3000:]


def test_a_pipeline_fenced_over_and_over_gives_up_with_the_reason(tmp_path: Path, stack: Any) -> None:
    """More than MAX_REJOINS fences in the window: another process holds the membership, so
    the pipeline ends non-zero with the fatal error, for supervision and an operator to see."""
    env = write_env(
        tmp_path / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "5", "seed": "6", "rate": "200"},
        },
        bars_config={"bar_volume": 50, "runtime": {"checkpoint_interval_s": 0.5}},
    )
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    bars = start_process(env, env.bars_pipeline)
    ingest = start_process(env, env.ingest)
    try:
        wait_started(env, env.bars_pipeline, bars)
        for round_ in range(MAX_REJOINS + 1):
            # the pipeline's member (the first, or the one started after the last fence) holds
            # the partitions: fence it again
            holds = partial(_assigned_at_least, env, bars, round_ + 1)
            wait_for(holds, 90, what=f"member {round_ + 1} of the pipeline to get the partitions")
            if bars.poll() is not None:
                break
            _intruder(env, group, f"{env.bars_pipeline}-0").close()
        code = bars.wait(120)
    finally:
        for proc in (bars, ingest):
            if proc.poll() is None:
                proc.kill()
    log = _log(env)
    assert code != 0 and log.count(REJOINED) == MAX_REJOINS, (code, log[-3000:])
    assert "group.instance.id" in log and "supervision restarts the pipeline" in log, log[-3000:]
