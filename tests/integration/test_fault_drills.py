"""Fault drills on a three-broker cluster (RF 3, min ISR 2) with the flagship pipelines at load.

Each drill runs the ingest (synthetic trades at a steady rate) and the bars pipeline as real
processes, injects a failure while they work, and then proves from the topics themselves that
nothing was lost: every generated trade is on the trades topic, the bars are exactly the bars
of an uninterrupted offline replay, and any duplicate is an identical copy with the same
identity (removed by identity dedup). Neither pipeline may stop.

Every drill prints one ``drill measured:`` line (trades and bars produced, consumed, lost,
duplicated before and after identity dedup, the longest pause of each pipeline, recovery
times) and asserts those figures: lost 0, changed 0, duplicates left after dedup 0, every
trade consumed. Counts and rates are kept modest so the whole file runs in a few minutes.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import TMPFS_NODE, ClickHouseEndpoint, ClusterStack
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
    start_sink,
    stop_process,
    wait_for,
    wait_started,
    write_env,
)

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.control.inspect import pipeline_metrics
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.admin import KafkaAdmin, KafkaUnavailableError
from tradesignals_dagster.kafka.replication import ReplicationHealth, replication_health
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.process import pid_alive, tail, tcp_open
from tradesignals_dagster.stack.stack import SchemaRegistryService
from tradesignals_dagster.streaming.files import write_records
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig
from tradesignals_dagster.warehouse.client import clickhouse_client

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Load:
    """The ingest's synthetic trades: how many, how fast (trades/s), over which symbols."""

    count: int
    rate: int
    symbols: int = 20
    seed: int = 41

    @property
    def seconds(self) -> float:
        return self.count / self.rate


STEADY = Load(36_000, 3_000)  # 12 s of trades
LONG = Load(54_000, 1_500)  # 36 s of trades: a 30 s fault falls inside it
# A node SIGKILLed on a busy 2-core machine replays its metadata and recovers its logs slowly:
# give a restart time rather than kill it and start over.
RESTART_TIMEOUT = 300.0


# -- the pipelines' own progress ------------------------------------------------------------------


def _records_out(env: PipelineEnv, key: str) -> int | None:
    """The pipeline's acknowledged output (``records_out_total`` on its metrics endpoint); None
    while it does not answer. Independent of the brokers, so it can be read while one is dying."""
    value = pipeline_metrics(env.settings.state_dir, key, timeout_s=1).get("records_out_total")
    return None if value is None else int(value)


class Progress:
    """Samples both pipelines' acknowledged output every 0.25 s in a thread, so a drill can say
    how long each one made no progress (the producers backing off while a leader moves)."""

    def __init__(self, env: PipelineEnv) -> None:
        self.env = env
        self.samples: dict[str, list[tuple[float, int]]] = {env.ingest: [], env.bars_pipeline: []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for key, samples in self.samples.items():
                value = _records_out(self.env, key)
                if value is not None:
                    samples.append((time.monotonic(), value))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def longest_pause(self, key: str, start: float, end: float) -> float:
        """The longest time in ``[start, end]`` during which ``key`` acknowledged no output."""
        last_change, longest, previous, last_seen = start, 0.0, None, start
        for t, value in self.samples[key]:
            if t < start or t > end:
                previous = value if t < start else previous
                continue
            if previous is not None and value > previous:
                longest = max(longest, t - last_change)
                last_change = t
            previous, last_seen = value, t
        return round(max(longest, last_seen - last_change), 1)


# -- running a drill ------------------------------------------------------------------------------


def _log_tail(env: PipelineEnv, key: str) -> str:
    """The pipeline's own log lines (not librdkafka's), last ones first to read."""
    lines = (env.root / f"{key}.log").read_text(errors="replace").splitlines()
    return "\n".join(line[:400] for line in lines if not line.startswith("%"))[-3000:]


def _leader_moved(env: PipelineEnv, gone: int) -> bool:
    return _leader_of(env, env.bars) not in (gone, -1)


def _leader_of(env: PipelineEnv, topic: str, partition: int = 0) -> int:
    meta = KafkaAdmin(env.settings.kafka_config()).metadata()
    return int(meta.topics[topic].partitions[partition].leader)


def _health(env: PipelineEnv, topics: set[str], timeout: float = 60) -> dict[str, ReplicationHealth]:
    """Replication health of ``topics``, asked again while the cluster does not answer: right
    after a broker dies or restarts, one admin request can go to it and time out (seen in CI,
    ``describe configs ... did not answer in 10s``), and an operator would simply ask again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return replication_health(KafkaAdmin(env.settings.kafka_config()), topics)
        except KafkaUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _under_replicated(env: PipelineEnv) -> bool:
    return any(h.under_replicated for h in _health(env, {env.trades, env.bars}).values())


def _new_env(
    tmp_path: Path, stack: ClusterStack, load: Load, *, apply: bool = True, clickhouse: Settings | None = None
) -> PipelineEnv:
    return write_env(
        tmp_path,
        stack,
        replication=(3, 2),
        apply=apply,
        clickhouse=clickhouse,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {
                "symbols": str(load.symbols),
                "seed": str(load.seed),
                "count": str(load.count),
                "rate": str(load.rate),
            },
        },
        bars_config={"bar_volume": 400, "split_trades": True, "runtime": {"checkpoint_interval_s": 1}},
    )


Inject = Callable[[PipelineEnv, Progress], dict[str, Any]]


def _run_drill(
    tmp_path: Path,
    stack: ClusterStack,
    inject: Inject,
    load: Load = STEADY,
    clickhouse: Settings | None = None,
) -> dict[str, Any]:
    """Run both pipelines at ``load`` (and, given ``clickhouse``, the sink of the bars into a
    table), call ``inject`` 3 s into the ingest, check that nothing stopped, wait for the bars
    pipeline (and the table) to catch up, and count from the topics (and the table)."""
    began = time.monotonic()
    env = _new_env(tmp_path / "env", stack, load, clickhouse=clickhouse)
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    bars_proc = start_process(env, env.bars_pipeline)
    wait_started(env, env.bars_pipeline, bars_proc)
    sink = start_sink(env.settings, "bars", env.root / "sink.log") if clickhouse else None
    ingest_proc = start_process(env, env.ingest)
    progress = Progress(env)
    try:
        wait_started(env, env.ingest, ingest_proc)
        time.sleep(3)
        measured = inject(env, progress)
        assert bars_proc.poll() is None, (
            f"the bars pipeline stopped ({bars_proc.returncode}): {_log_tail(env, env.bars_pipeline)}"
        )
        assert sink is None or sink.poll() is None, (
            f"the sink stopped ({sink.returncode}): {_log_tail(env, 'sink')}"
        )
        assert ingest_proc.wait(load.seconds + 120) == 0, f"the ingest failed: {_log_tail(env, env.ingest)}"
        recovery_started = time.monotonic()
        wait_for(lambda: caught_up(env, group, env.trades), 120, what="the bars pipeline to catch up")
        measured["lag_recovered_s"] = round(time.monotonic() - recovery_started, 1)
        assert stop_process(bars_proc, signal.SIGTERM) == 0, _log_tail(env, env.bars_pipeline)
        if sink is not None:
            measured["table_caught_up_s"] = _wait_for_table(env, sink, recovery_started)
            assert stop_process(sink, signal.SIGTERM) == 0, _log_tail(env, "sink")
    finally:
        progress.stop()
        for proc in (ingest_proc, bars_proc, sink):
            if proc is not None and proc.poll() is None:
                proc.kill()
    measured |= _count(tmp_path, env, load, group)
    measured["drill_s"] = round(time.monotonic() - began, 1)
    return measured


def _table_positions(env: PipelineEnv) -> list[tuple[int, int, str]]:
    """(Kafka partition, offset, ts-id) of every row of the drill's table."""
    client = clickhouse_client(env.settings)
    rows = client.query(f"SELECT _partition, _offset, _ts_id FROM {env.extra['table']}").result_rows
    return [(int(p), int(o), str(i)) for p, o, i in rows]


def _wait_for_table(env: PipelineEnv, sink: subprocess.Popen[bytes], since: float) -> float:
    """Until the table holds a row per bar on the topic (the bars pipeline has stopped)."""
    bars = sum(end_offsets(env, env.bars).values())

    client = clickhouse_client(env.settings)

    def done() -> bool:
        assert sink.poll() is None, f"the sink stopped ({sink.returncode}): {_log_tail(env, 'sink')}"
        return int(client.query(f"SELECT count() FROM {env.extra['table']}").result_rows[0][0]) >= bars

    wait_for(done, 120, interval=0.5, what=f"the table to hold the {bars} bars of the topic")
    time.sleep(2)  # a doubled insert would land now
    return round(time.monotonic() - since, 1)


def _count(tmp_path: Path, env: PipelineEnv, load: Load, group: str) -> dict[str, Any]:
    """Messages produced, consumed, lost and duplicated, from the topics themselves.

    A duplicate is a second message with the same identity (``ts-id``); identity dedup removes
    it when it is an identical copy. ``*_duplicates_after_dedup`` counts identities whose copies
    differ, which dedup could not remove.
    """
    trades = read_topic(env, env.trades, timeout=60)
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for msg in trades:
        assert msg.value is not None
        by_id[msg.headers["ts-id"]].add(msg.value)

    config = SyntheticConfig(symbols=load.symbols, seed=load.seed, count=load.count, rate=load.rate)
    generated = list(OptionTradeGenerator(config))
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
    table: dict[str, Any] = {}
    if "table" in env.extra:
        rows = _table_positions(env)
        on_topic = {(m.partition, m.offset): m.headers["ts-id"] for m in bar_msgs}
        in_table = {(p, o): i for p, o, i in rows}
        table = {
            "table_rows": len(rows),
            "table_rows_lost": len(set(on_topic) - set(in_table)),
            "table_rows_unexpected": len(set(in_table) - set(on_topic)),
            "table_rows_duplicated": len(rows) - len(in_table),
            "table_rows_wrong_identity": sum(1 for k, i in in_table.items() if on_topic.get(k, i) != i),
        }
    return table | {
        "trades_generated": load.count,
        "trades_produced": len(trades),
        "trades_consumed": sum(committed(env, group, env.trades).values()),
        "trades_lost": len({str(t["trade_id"]) for t in generated} - set(by_id)),
        "trade_duplicates": len(trades) - len(by_id),
        "trade_duplicates_after_dedup": sum(len(v) - 1 for v in by_id.values()),
        "bars_expected": len(expected),
        "bars_produced": len(bar_msgs),
        "bars_lost": len(set(expected) - set(bars)),
        "bars_unexpected": len(set(bars) - set(expected)),
        "bars_changed": sum(1 for k in expected if k in bars and bars[k] != expected[k]),
        "bar_duplicates": len(bar_msgs) - len(bar_ids),
        "bar_duplicates_after_dedup": sum(len(v) - 1 for v in bar_ids.values()),
    }


def _assert_nothing_lost(name: str, measured: dict[str, Any]) -> None:
    print(f"\ndrill measured [{name}]: {measured}", flush=True)
    assert measured["trades_lost"] == 0, measured
    assert measured["trades_produced"] >= measured["trades_generated"], measured
    assert measured["trade_duplicates_after_dedup"] == 0, measured
    assert measured["trades_consumed"] == measured["trades_produced"], measured
    assert measured["bars_lost"] == 0 and measured["bars_unexpected"] == 0, measured
    assert measured["bars_changed"] == 0, measured
    assert measured["bar_duplicates_after_dedup"] == 0, measured
    if "table_rows" in measured:  # the sink: one row per bar message, exactly once
        assert measured["table_rows"] == measured["bars_produced"], measured
        assert measured["table_rows_lost"] == 0 and measured["table_rows_unexpected"] == 0, measured
        assert measured["table_rows_duplicated"] == 0, measured
        assert measured["table_rows_wrong_identity"] == 0, measured


# -- drills ---------------------------------------------------------------------------------------


def test_drill_one_broker_killed_kept_down_and_brought_back(
    tmp_path: Path, cluster_stack: ClusterStack, clickhouse_endpoint: ClickHouseEndpoint
) -> None:
    """SIGKILL one broker, keep it down past ``replica.lag.time.max.ms`` while the pipelines
    and the ClickHouse sink of the bars work on the other two (RF 3 / min ISR 2 stays
    writable), start it again, and wait until it is back in every ISR. Every trade, bar and
    table row arrives exactly once."""

    def inject(env: PipelineEnv, progress: Progress) -> dict[str, Any]:
        victim = cluster_stack.cluster.node(2)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(14)  # down (past replica.lag.time.max.ms) while the pipelines keep working on two
        health = _health(env, {env.trades})[env.trades]
        assert health.writable, (
            f"RF 3 / min ISR 2 must stay writable with one broker down: {health.summary()}"
        )
        degraded = bool(health.under_replicated)
        restarted = time.monotonic()
        cluster_stack.cluster.start(timeout=RESTART_TIMEOUT)
        wait_for(lambda: not _under_replicated(env), 180, what="the restarted broker to rejoin the ISR")
        now = time.monotonic()
        return {
            "isr_shrank": degraded,
            "broker_restart_to_isr_full_s": round(now - restarted, 1),
            "ingest_longest_pause_s": progress.longest_pause(env.ingest, killed, killed + 14),
            "bars_longest_pause_s": progress.longest_pause(env.bars_pipeline, killed, killed + 14),
        }

    measured = _run_drill(tmp_path, cluster_stack, inject, clickhouse=clickhouse_endpoint.settings)
    _assert_nothing_lost("one broker killed", measured)
    assert measured["table_rows"] > 0, measured
    assert measured["isr_shrank"], "the drill did not take a replica out of the ISR"


def test_drill_bars_leader_killed_repeatedly(tmp_path: Path, cluster_stack: ClusterStack) -> None:
    """SIGKILL the leader of bars partition 0 three times in a row, each time starting it again
    once a new leader was elected."""

    def inject(env: PipelineEnv, progress: Progress) -> dict[str, Any]:
        leaders, elections = [], []
        first = time.monotonic()
        for _ in range(3):
            leader = _leader_of(env, env.bars)
            leaders.append(leader)
            node = cluster_stack.cluster.node(leader)
            assert node.pid is not None
            os.kill(node.pid, signal.SIGKILL)
            killed = time.monotonic()
            wait_for(partial(_leader_moved, env, leader), 60, what="a new leader")
            elections.append(round(time.monotonic() - killed, 1))
            time.sleep(2)
            cluster_stack.cluster.start(timeout=RESTART_TIMEOUT)
        last = time.monotonic()
        wait_for(lambda: not _under_replicated(env), 180, what="every broker back in the ISR")
        return {
            "leaders_killed": leaders,
            "leader_elected_after_s": elections,
            "isr_full_after_last_restart_s": round(time.monotonic() - last, 1),
            "bars_longest_pause_s": progress.longest_pause(env.bars_pipeline, first, last),
        }

    measured = _run_drill(tmp_path, cluster_stack, inject)
    _assert_nothing_lost("bars leader killed repeatedly", measured)


OUTAGE_S = 30.0


def _topic_totals(env: PipelineEnv) -> tuple[int, int]:
    """Messages on the trades and on the bars topic (sum of end offsets)."""
    return sum(end_offsets(env, env.trades).values()), sum(end_offsets(env, env.bars).values())


def _names_registry(text: str, url: str) -> bool:
    return "schema registry" in text and url in text


def test_drill_schema_registry_stopped_for_30s(tmp_path: Path, cluster_stack: ClusterStack) -> None:
    """Stop the stack's schema registry process (SIGTERM, port closed) for 30 s while both
    pipelines run, then start it again on the same port with the same database.

    Running pipelines only need the registry at start-up (they look up their schema ids then
    and keep them), so trades and bars must keep arriving throughout. During the outage
    ``plan`` and ``apply`` of a new application (new subjects to register) and the start of a
    new pipeline process fail with the product's own error naming the registry (no traceback);
    after it returns, the same application plans, applies and deploys. What this drill found:
    ``apply`` creates the plan's topics before it reaches the first schema, so the failed apply
    leaves the new topics behind; the next apply, planned afresh, registers the schemas only.
    """
    registry: SchemaRegistryService = cluster_stack.registry
    url, port = registry.url, registry.port
    assert url == cluster_stack.schema_registry_url and port is not None
    newcomer = _new_env(tmp_path / "new", cluster_stack, STEADY, apply=False)
    plane = ControlPlane.from_settings(newcomer.settings)
    new_plan = plane.plan(newcomer.app)
    assert any(c.kind == "register_schema" for c in new_plan.changes), new_plan.changes

    def inject(env: PipelineEnv, progress: Progress) -> dict[str, Any]:
        subjects = sorted(env.app.subjects[t] for t in (env.trades, env.bars))
        ids_before = {s: plane.registry.latest(s) for s in subjects}
        pid = registry.pid
        assert pid is not None
        assert registry.stop(timeout=10)
        stopped = time.monotonic()
        assert not pid_alive(pid) and not tcp_open(port), "the schema registry is still running"
        totals = [_topic_totals(env)]

        with pytest.raises(TradesignalsError) as planned:
            plane.plan(newcomer.app)
        assert _names_registry(str(planned.value), url), planned.value
        with pytest.raises(TradesignalsError) as applied:
            plane.apply(new_plan)
        assert _names_registry(str(applied.value), url), applied.value

        deploy = start_process(newcomer, newcomer.bars_pipeline)
        deploy_code: int | None = None
        marks = [OUTAGE_S / 2, OUTAGE_S]  # when to count the topics again
        while marks or deploy_code is None:  # at least 30 s, and until the deploy has failed
            elapsed = time.monotonic() - stopped
            assert elapsed < OUTAGE_S + 90, "the new pipeline process did not exit"
            if marks and elapsed >= marks[0]:
                marks.pop(0)
                totals.append(_topic_totals(env))
            deploy_code = deploy.poll()
            time.sleep(0.2)
        outage = time.monotonic() - stopped
        deploy_log = (newcomer.root / f"{newcomer.bars_pipeline}.log").read_text(errors="replace")
        assert deploy_code != 0 and _names_registry(deploy_log, url), deploy_log[-2000:]
        assert "Traceback" not in deploy_log, deploy_log[-3000:]
        (trades0, bars0), (trades1, bars1), (trades2, bars2) = totals
        assert trades0 < trades1 < trades2, f"trades stopped arriving during the outage: {totals}"
        assert bars0 < bars1 < bars2, f"bars stopped arriving during the outage: {totals}"

        restarted = time.monotonic()
        status = SchemaRegistryService(registry.home.parent, port=port).start(timeout=60)
        back = time.monotonic()
        assert status["url"] == url and status["pid"] != pid
        assert {s: plane.registry.latest(s) for s in subjects} == ids_before, "the registry lost state"
        result = plane.apply(plane.plan(newcomer.app))
        new_subjects = {newcomer.app.subjects[t] for t in (newcomer.trades, newcomer.bars)}
        assert new_subjects <= set(result.schema_ids), result
        deploy = start_process(newcomer, newcomer.bars_pipeline)
        wait_started(newcomer, newcomer.bars_pipeline, deploy, timeout=60)
        deployed = time.monotonic()
        assert stop_process(deploy) == 0, _log_tail(newcomer, newcomer.bars_pipeline)
        return {
            "registry_down_s": round(outage, 1),
            "trades_during_outage": trades2 - trades0,
            "bars_during_outage": bars2 - bars0,
            "failed_deploy_exit_code": deploy_code,
            "registry_back_s": round(back - restarted, 1),
            "apply_and_deploy_after_return_s": round(deployed - back, 1),
            "ingest_longest_pause_s": progress.longest_pause(env.ingest, stopped, stopped + outage),
            "bars_longest_pause_s": progress.longest_pause(env.bars_pipeline, stopped, stopped + outage),
        }

    measured = _run_drill(tmp_path, cluster_stack, inject, LONG)
    _assert_nothing_lost("schema registry stopped", measured)
    assert measured["registry_down_s"] >= OUTAGE_S


def _fill(path: Path) -> int:
    """Write zeros to ``path`` until its filesystem is full; the bytes written."""
    chunk = b"\0" * (1 << 20)
    written = 0
    with path.open("wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return written


def test_drill_broker_log_dir_filled(tmp_path: Path, tmpfs_cluster: ClusterStack) -> None:
    """Fill the only log directory of one broker (a size-limited tmpfs holding its ``log.dirs``,
    which is also its KRaft metadata log dir) while both pipelines produce, then free the space
    and start the broker again.

    What Kafka does (seen in this drill, Kafka 4.1): the broker's next append fails with
    ``IOException: No space left on device``; the log dir is marked offline and, being the
    broker's only one (and its metadata dir), the broker halts. From then on it is a broker
    loss: the controller fences it, leaders move to the other two, RF 3 / min ISR 2 stays
    writable, and the idempotent producers retry (back off) until the new leaders answer; the
    pipelines do not die and need no restart. Once the space is freed, the broker starts again,
    recovers its log and rejoins every ISR.
    """
    stack = tmpfs_cluster
    log_dir = stack.log_dir
    assert log_dir is not None
    node = stack.cluster.node(TMPFS_NODE)

    def inject(env: PipelineEnv, progress: Progress) -> dict[str, Any]:
        pid = node.pid
        assert pid is not None
        filler = log_dir / "filler"
        filled = time.monotonic()
        written = _fill(filler)
        usage = shutil.disk_usage(log_dir)
        wait_for(lambda: not pid_alive(pid), 90, what=f"broker {TMPFS_NODE} to give up its full log dir")
        died = time.monotonic()
        log = tail(node.log_path, 400)
        assert "No space left on device" in log and "Shutdown broker because all log dirs" in log, log[-4000:]
        time.sleep(5)  # the pipelines keep producing on the other two brokers
        health = _health(env, {env.trades})[env.trades]
        assert health.writable, f"RF 3 / min ISR 2 must stay writable: {health.summary()}"
        paused_until = time.monotonic()
        filler.unlink()
        restarted = time.monotonic()
        stack.cluster.start(timeout=RESTART_TIMEOUT)
        wait_for(lambda: not _under_replicated(env), 180, what="the restarted broker to rejoin the ISR")
        return {
            "filler_mib": round(written / (1 << 20), 1),
            "free_after_fill_kib": usage.free // 1024,
            "broker_exit_after_fill_s": round(died - filled, 1),
            "ingest_longest_pause_s": progress.longest_pause(env.ingest, filled, paused_until),
            "bars_longest_pause_s": progress.longest_pause(env.bars_pipeline, filled, paused_until),
            "broker_restart_to_isr_full_s": round(time.monotonic() - restarted, 1),
        }

    measured = _run_drill(tmp_path, stack, inject, LONG)
    _assert_nothing_lost("broker log dir filled", measured)
