"""Feed inputs on the real broker: websocket ingest against a local feed, SIGTERM of a process."""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_pipelines_support import (
    PipelineEnv,
    ThreadRun,
    decode_all,
    end_offsets,
    read_topic,
    start_process,
    stop_process,
    wait_for,
    wait_started,
    write_env,
)
from ws_server import FeedServer, envelope

from tradesignals_dagster.streaming.metrics import metrics_port_file

SYM = "AAPL  250117C00150000"


def feed_trade(n: int, **fields: Any) -> dict[str, Any]:
    return {"trade_id": f"w{n}", "symbol": SYM, "underlying": "AAPL", "timestamp": 1_737_072_000_000 + n,
            "price": "1.25", "size": n + 1, "oi": 5, "venue": "X", **fields}  # fmt: skip


SCRIPT = [
    [
        json.dumps({"type": "subscribed", "channel": "option_trades"}),
        envelope([feed_trade(0), feed_trade(1, price=1.5), feed_trade(2, px="2.0001", price=None)]),
        envelope(feed_trade(3, timestamp="2025-01-17T00:00:00.003Z")),
        "garbage{",
        envelope([feed_trade(4, price="abc")]),
        envelope([feed_trade(5, oi="7"), feed_trade(6, size=3.0)]),
    ],
    [
        json.dumps({"type": "subscribed", "channel": "option_trades"}),
        envelope([feed_trade(7), feed_trade(8)]),
        json.dumps({"type": "heartbeat"}),
        envelope([feed_trade(9)]),
    ],
]
VALID = [0, 1, 2, 3, 5, 6, 7, 8, 9]


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    server = FeedServer(SCRIPT).start()
    yield server
    server.stop()


def test_websocket_ingest_with_reconnect_and_dead_letters(
    tmp_path: Path, stack: Any, feed: FeedServer
) -> None:
    subscribe = {"op": "subscribe", "channel": "option_trades"}
    env: PipelineEnv = write_env(
        tmp_path / "env",
        stack,
        partitions=1,
        ingest_input={
            "type": "websocket",
            "url": feed.url,
            "subscribe": subscribe,
            "additional_metadata": {
                "data_key": "data",
                "type_field": "type",
                "type_value": "trades",
                "field_map": {"px": "price"},
                "backoff_initial_s": "0.1",
                "ping_interval_s": "1",
            },
        },
    )
    run = ThreadRun(env.runner(env.ingest))
    wait_for(lambda: sum(end_offsets(env, env.trades).values()) >= len(VALID), 30, what="feed trades")
    wait_for(lambda: sum(end_offsets(env, f"{env.trades}.dlq").values()) >= 2, 30, what="dead letters")
    summary = run.stop()
    assert summary.records_out == len(VALID) and summary.dlq == 2
    assert run.runner.metrics.reconnects == 1

    trades = decode_all(env, env.trades, read_topic(env, env.trades))
    assert [t["trade_id"] for t in trades] == [f"w{n}" for n in VALID]
    by_id = {t["trade_id"]: t for t in trades}
    assert (
        by_id["w0"]["price"] == 12_500 and by_id["w1"]["price"] == 15_000 and by_id["w2"]["price"] == 20_001
    )
    assert by_id["w3"]["timestamp"] == 1_737_072_000_003
    assert by_id["w5"]["oi"] == 7 and by_id["w6"]["size"] == 3

    dead = read_topic(env, f"{env.trades}.dlq")
    assert [m.headers["stage"] for m in dead] == ["decode", "decode"]
    assert dead[0].value == b"garbage{" and "not JSON" in dead[0].headers["error"]
    assert "price" in dead[1].headers["error"] and json.loads(dead[1].value or b"")["trade_id"] == "w4"
    assert all(m.headers["source_topic"] == f"websocket:{feed.url}" for m in dead)

    assert feed.connections == 2
    assert [json.loads(r[0]) for r in feed.received] == [subscribe, subscribe]


def test_sigterm_exits_zero_after_flushing(tmp_path: Path, stack: Any) -> None:
    env: PipelineEnv = write_env(
        tmp_path / "env",
        stack,
        partitions=2,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "10", "seed": "3", "rate": "4000"},
        },
    )
    proc = start_process(env, env.ingest)
    port_file = metrics_port_file(env.settings.state_dir, env.ingest)
    wait_started(env, env.ingest, proc)
    url = f"http://127.0.0.1:{int(port_file.read_text())}/metrics"

    def produced() -> int:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        line = next(x for x in text.splitlines() if x.startswith("tradesignals_records_out_total"))
        return int(float(line.rsplit(" ", 1)[1]))

    wait_for(lambda: produced() > 1000, 30, what="records produced")
    assert stop_process(proc, signal.SIGTERM) == 0
    assert not port_file.exists()
    written = sum(end_offsets(env, env.trades).values())
    trades = decode_all(env, env.trades, read_topic(env, env.trades))
    assert written == len(trades) >= 1000
    assert [t["trade_id"] for t in sorted(trades, key=lambda t: int(t["trade_id"].split("-")[1]))] == [
        f"T3-{n}" for n in range(len(trades))
    ], "every generated trade up to the stop was flushed, none skipped"
    log = (env.root / f"{env.ingest}.log").read_text().splitlines()
    events = [json.loads(line) for line in log if line.startswith("{")]
    assert any(e["msg"] == "stopping" and e.get("reason") == "SIGTERM" for e in events)
    assert events[-1]["msg"] == "pipeline stopped"
