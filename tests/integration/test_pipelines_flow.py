"""The flagship flow on the real broker: synthetic feed -> ingest -> trades -> bars.

The bars a live run publishes must be exactly the bars ``replay_file`` computes offline from
the same trades, with the registry's headers, the symbol as key and a ``ts-id`` identity.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_pipelines_support import (
    PipelineEnv,
    ThreadRun,
    caught_up,
    decode_all,
    normalise_bars,
    read_jsonl,
    read_topic,
    scaled_to_str,
    wait_for,
    write_env,
)

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.streaming.errors import SchemaNotRegisteredError, TopicMissingError
from tradesignals_dagster.streaming.files import write_records
from tradesignals_dagster.streaming.metrics import metrics_port_file
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

SYMBOLS, SEED, COUNT = 25, 11, 20_000


def test_synthetic_ingest_and_bars_match_replay(tmp_path: Path, stack: Any) -> None:
    env: PipelineEnv = write_env(
        tmp_path / "env",
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": str(SYMBOLS), "seed": str(SEED), "count": str(COUNT)},
        },
        bars_config={"bar_volume": 700, "runtime": {"batch_size": 2000}},
    )
    ingest = env.runner(env.ingest).run()
    assert ingest.reason == "exhausted"
    assert ingest.records_in == ingest.records_out == COUNT

    bars_run = ThreadRun(env.runner(env.bars_pipeline))
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    wait_for(lambda: caught_up(env, group, env.trades), 60, what="bars pipeline to commit every trade")
    port = int(metrics_port_file(env.settings.state_dir, env.bars_pipeline).read_text())
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    summary = bars_run.stop()
    assert f'tradesignals_records_in_total{{pipeline="{env.bars_pipeline}"}} {COUNT}' in scrape
    assert "tradesignals_batch_latency_seconds_bucket" in scrape
    assert summary.records_in == COUNT and summary.dlq == 0

    # trades: key = symbol, ts-id = trade_id, registry headers
    trade_msgs = read_topic(env, env.trades)
    trades = decode_all(env, env.trades, trade_msgs)
    assert len(trades) == COUNT
    first, rec = trade_msgs[0], trades[0]
    assert first.key == rec["symbol"].encode()
    assert first.headers["ts-id"] == rec["trade_id"]
    assert first.headers["publisher_id"] == "opra"
    assert first.headers["entitlements"] == "opra-realtime,internal"
    assert first.headers["region"] == "test"

    # the same trades, offline
    generated = list(OptionTradeGenerator(SyntheticConfig(symbols=SYMBOLS, seed=SEED, count=COUNT)))
    assert sorted(t["trade_id"] for t in trades) == sorted(t["trade_id"] for t in generated)
    trades_file = tmp_path / "trades.parquet"
    write_records(trades_file, generated, RecordSchema(env.app.schemas[env.trades]))
    result = replay_file(
        env.app,
        env.bars_pipeline,
        trades_file,
        tmp_path / "bars.jsonl",
        pipelines_dir=env.settings.pipelines_dir,
    )
    expected = normalise_bars(list(read_jsonl(tmp_path / "bars.jsonl")))
    assert result.records_in == COUNT and result.records_out == len(expected) > 100

    bar_msgs = read_topic(env, env.bars)
    bars = decode_all(env, env.bars, bar_msgs)
    live = normalise_bars(scaled_to_str(bars))
    assert len(bars) == len(live), "an uninterrupted run publishes each bar once"
    assert live == expected
    for msg, bar in zip(bar_msgs, bars, strict=True):
        assert msg.key == bar["symbol"].encode()
        assert msg.headers["ts-id"] == f"{bar['symbol']}:{bar['sequence']}"
        assert msg.headers["dataset_id"] == "option_volume_bars"
        assert msg.headers["entitlements"] == "internal"

    # open bars are in the state topic, keyed by symbol
    state = read_topic(env, f"{env.bars_pipeline}.state")
    assert {m.key.decode() for m in state if m.key} == {t["symbol"] for t in generated}


def test_a_registry_that_was_not_applied_fails_clearly(tmp_path: Path, stack: Any) -> None:
    env: PipelineEnv = write_env(tmp_path / "env", stack, apply=False)
    with pytest.raises(SchemaNotRegisteredError, match="run `tradesignals apply`"):
        env.runner(env.bars_pipeline).run()
    plane = ControlPlane.from_settings(env.settings)
    plane.apply(plane.plan(env.app, subjects=set(env.app.subjects.values())))  # schemas only
    with pytest.raises(
        TopicMissingError, match=rf"topic\(s\) {env.trades}, .* do not exist; run `tradesignals apply`"
    ):
        env.runner(env.bars_pipeline).run()
