"""Dead letters on the real broker: bad messages go to ``<topic>.dlq`` while the rest flows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from test_pipelines_support import (
    PipelineEnv,
    ThreadRun,
    caught_up,
    committed,
    decode_all,
    normalise_bars,
    read_jsonl,
    read_topic,
    scaled_to_str,
    wait_for,
    write_env,
)

from tradesignals_dagster.streaming.errors import DeadLetterStopError, DeliveryError
from tradesignals_dagster.streaming.files import write_records
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file


def trade(n: int, symbol: str = "SPY   250117C00500000", size: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "trade_id": f"t{n}",
        "symbol": symbol,
        "underlying": "SPY",
        "timestamp": 1_737_072_000_000 + n,
        "price": 12_500 + n,
        "size": size,
        "oi": 10,
        **extra,
    }


def produce_mixed(env: PipelineEnv) -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """Valid trades with five bad messages among them, all on partition 0.

    Returns the valid trades and ``{offset: (stage, error fragment)}`` of the bad ones.
    """
    serde = env.serde(env.trades)
    producer = Producer(env.settings.kafka_config())
    valid: list[dict[str, Any]] = []
    bad: dict[int, tuple[str, str]] = {}
    offset = 0

    def send(value: bytes | None, expect: tuple[str, str] | None = None) -> None:
        nonlocal offset
        producer.produce(env.trades, value, b"SPY", partition=0)
        if expect:
            bad[offset] = expect
        offset += 1

    for n in range(300):
        if n == 20:
            send(b"definitely not avro", ("decode", "magic byte"))
        if n == 40:
            send(None, ("decode", "tombstone"))
        if n == 60:
            send(b"\x00\x00\x0f\x42\x3f" + b"\x02x", ("decode", "schema id"))
        if n == 80:
            send(serde.encode(trade(n, symbol="X" * 40)), ("validate", "max_length 32"))
        if n == 100:
            send(serde.encode(trade(n, size=-5)), ("process", "negative"))
        t = trade(n)
        valid.append(t)
        send(serde.encode(t))
    producer.flush(10)
    return valid, bad


def test_undecodable_and_invalid_records_go_to_the_dlq(tmp_path: Path, stack: Any) -> None:
    env: PipelineEnv = write_env(
        tmp_path / "env", stack, partitions=1, bars_config={"bar_volume": 100, "runtime": {"batch_size": 64}}
    )
    valid, bad = produce_mixed(env)
    run = ThreadRun(env.runner(env.bars_pipeline))
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    wait_for(lambda: caught_up(env, group, env.trades), 60, what="all trades committed")
    summary = run.stop()
    assert summary.dlq == len(bad) == 5
    assert summary.records_in == len(valid) + len(bad)

    dead = read_topic(env, f"{env.trades}.dlq")
    assert sorted(int(m.headers["source_offset"]) for m in dead) == sorted(bad)
    for msg in dead:
        stage, fragment = bad[int(msg.headers["source_offset"])]
        assert msg.headers["stage"] == stage
        assert fragment in msg.headers["error"], msg.headers["error"]
        assert msg.headers["source_topic"] == env.trades
        assert msg.headers["source_partition"] == "0"
        assert msg.headers["pipeline"] == env.bars_pipeline
        assert msg.key == b"SPY"
    assert {m.headers["error_type"] for m in dead} >= {"DecodeError", "ValidationError", "InvalidTradeError"}

    write_records(tmp_path / "valid.jsonl", valid, RecordSchema(env.app.schemas[env.trades]))
    replay_file(
        env.app,
        env.bars_pipeline,
        tmp_path / "valid.jsonl",
        tmp_path / "bars.jsonl",
        pipelines_dir=env.settings.pipelines_dir,
    )
    expected = normalise_bars(list(read_jsonl(tmp_path / "bars.jsonl")))
    live = normalise_bars(scaled_to_str(decode_all(env, env.bars, read_topic(env, env.bars))))
    assert live == expected and len(expected) == 300 * 7 // 105


def test_stop_policy_stops_at_the_first_bad_record_without_committing(tmp_path: Path, stack: Any) -> None:
    env: PipelineEnv = write_env(
        tmp_path / "env",
        stack,
        partitions=1,
        bars_config={"bar_volume": 100, "runtime": {"dead_letter": "stop"}},
    )
    produce_mixed(env)
    runner = env.runner(env.bars_pipeline)
    with pytest.raises(DeadLetterStopError, match="magic byte"):
        runner.run()
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    assert all(offset < 0 for offset in committed(env, group, env.trades).values())
    assert read_topic(env, f"{env.trades}.dlq") == []


def test_output_the_broker_refuses_stops_the_pipeline_without_committing(tmp_path: Path, stack: Any) -> None:
    """At-least-once: input offsets are committed only after the outputs are acknowledged."""
    env: PipelineEnv = write_env(tmp_path / "env", stack, partitions=1, bars_config={"bar_volume": 100})
    admin = AdminClient(dict(env.settings.kafka_config()))
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        env.bars,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "16", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    produce_mixed(env)
    run = ThreadRun(env.runner(env.bars_pipeline))
    try:
        wait_for(lambda: run.result is not None, 30, what="the pipeline to stop on the refused output")
    finally:
        run.runner.request_stop("test over")
    with pytest.raises(DeliveryError, match="not delivered"):
        run.join()
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    assert all(offset < 0 for offset in committed(env, group, env.trades).values())
