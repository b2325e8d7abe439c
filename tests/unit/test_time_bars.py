"""1-second time bars against an independent oracle: hand-computed windows with out-of-order and
late trades, each late policy, batching and restarts that must not change a bar, bad settings."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.streaming.processors.base import Reject
from tradesignals_dagster.streaming.processors.time_bars import OhlcvAggregation
from tradesignals_dagster.streaming.windows import EventTimeWindows, WindowConfig, WindowError
from tradesignals_dagster.testing import StateTopic, build_processor, round_trip_state, run_records

ROOT = Path(__file__).parent.parent.parent
REG, PIPES = ROOT / "registry", ROOT / "pipelines"


def trade(sym: str, ts: int, price: int, size: int, oi: int = 0) -> dict[str, Any]:
    return {"symbol": sym, "timestamp": ts, "price": price, "size": size, "oi": oi, "trade_id": f"{sym}{ts}"}


def windows(late: str = "dead_letter", grace: int = 500, hop: int | None = None) -> EventTimeWindows:
    cfg = WindowConfig(size_ms=1000, hop_ms=hop, grace_ms=grace, late=late)
    return EventTimeWindows(cfg, OhlcvAggregation(4), key_field="symbol", time_field="timestamp")


# Arrival order; comments give the window and why.
STREAM = [
    trade("A", 1000, 100, 1, 5),  # 0  A[1000,2000) opens
    trade("A", 1500, 110, 2, 6),  # 1
    trade("B", 1100, 200, 10, 1),  # 2  B[1000,2000) opens
    trade("A", 1200, 90, 3, 7),  # 3  out of order, same window: not the open, the low
    trade("A", 2100, 120, 1, 8),  # 4  watermark 2100 < 2500: A[1000,2000) stays open
    trade("A", 1999, 130, 1, 9),  # 5  within the grace: applied, the close (latest timestamp)
    trade("A", 2600, 100, 4, 10),  # 6  watermark 2600 >= 2500: A and B [1000,2000) emitted
    trade("A", 1800, 50, 1, 11),  # 7  late: its window closed at 2500
    trade("A", 3400, 140, 1, 12),  # 8  watermark 3400 < 3500
    trade("A", 3500, 140, 2, 13),  # 9  watermark 3500: A[2000,3000) emitted
]


def bar(
    sym: str,
    start: int,
    o: int,
    h: int,
    lo: int,
    c: int,
    vol: int,
    notional: int,
    n: int,
    oi: int,
    rev: int = 0,
) -> dict[str, Any]:
    return {
        "symbol": sym, "window_start": start, "window_end": start + 1000, "revision": rev, "open": o, "high": h,
        "low": lo, "close": c, "volume": vol, "vwap": notional / (vol * 10_000), "trade_count": n, "oi": oi,
    }  # fmt: skip


A1 = bar("A", 1000, 100, 130, 90, 130, 7, 100 + 220 + 270 + 130, 4, 9)
B1 = bar("B", 1000, 200, 200, 200, 200, 10, 2000, 1, 1)
A2 = bar("A", 2000, 120, 120, 100, 100, 5, 120 + 400, 2, 10)


def test_hand_computed_bars_and_a_late_trade_dead_lettered() -> None:
    result = run_records(windows(), STREAM, batch_size=3)
    assert result.outputs == [A1, B1, A2]
    assert [(r.index, r.stage, r.error_type) for r in result.rejected] == [
        (7, "process", "LateOrInvalidRecord")
    ]
    assert "past the grace of window [1000, 2000)" in result.rejected[0].error


def test_late_policy_update_reemits_the_bar_with_the_next_revision() -> None:
    result = run_records(windows("update"), STREAM)
    a1_rev1 = bar("A", 1000, 100, 130, 50, 130, 8, 720 + 50, 5, 9, rev=1)
    assert result.outputs == [A1, B1, a1_rev1, A2] and result.rejected == []


def test_late_policy_drop_counts_the_trade() -> None:
    proc = windows("drop")
    result = run_records(proc, STREAM)
    assert result.outputs == [A1, B1, A2] and result.rejected == [] and proc.late_dropped == 1


def test_hopping_windows_hold_each_trade_in_every_window_covering_it() -> None:
    proc = windows(grace=0, hop=500)
    out = proc.process([trade("A", 1200, 100, 1), trade("A", 1700, 110, 2), trade("A", 2600, 120, 1)])
    assert [(b["window_start"], b["volume"], b["trade_count"]) for b in out] == [
        (500, 1, 1),
        (1000, 3, 2),
        (1500, 2, 1),
    ]


def test_bad_trades_are_rejected_and_the_batch_goes_on() -> None:
    out = windows().process([trade("A", 1000, 100, -1), {"symbol": "A"}, trade("A", 3000, 100, 1)])
    assert [o.reason for o in out if isinstance(o, Reject)] == [
        "size must be a non-negative int, got -1",
        "missing field 'timestamp'",
    ]


def oracle(trades: list[dict[str, Any]], grace: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Independent of the implementation: a trade is late when its window's end + grace is at or
    below the highest timestamp seen before it; bars are the non-late trades grouped by window."""
    seen, late, groups = None, [], {}  # type: ignore[var-annotated]
    for i, t in enumerate(trades):
        start = t["timestamp"] // 1000 * 1000
        if seen is not None and start + 1000 + grace <= seen:
            late.append(i)
            continue
        groups.setdefault((t["symbol"], start), []).append((t["timestamp"], i, t))
        seen = t["timestamp"] if seen is None else max(seen, t["timestamp"])
    bars = []
    for (sym, start), items in groups.items():
        first = min(items, key=lambda x: (x[0], x[1]))[2]
        last = max(items, key=lambda x: (x[0], x[1]))[2]
        prices = [x[2]["price"] for x in items]
        vol = sum(x[2]["size"] for x in items)
        notional = sum(x[2]["price"] * x[2]["size"] for x in items)
        bars.append(
            bar(
                sym,
                start,
                first["price"],
                max(prices),
                min(prices),
                last["price"],
                vol,
                notional,
                len(items),
                last["oi"],
            )
        )
    return sorted(bars, key=lambda b: (b["symbol"], b["window_start"])), late


def random_trades(seed: int, n: int = 3000) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    clock, out = 0, []
    for i in range(n):
        clock += rnd.randint(0, 40)
        ts = max(0, clock - rnd.choice([0, 0, 0, 100, 400, 900, 2500]))  # out of order, some late
        out.append(trade(rnd.choice("ABCDE"), ts, rnd.randint(90, 110), rnd.randint(1, 9), i))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_streams_match_the_oracle_across_batches_and_restarts(seed: int) -> None:
    trades = random_trades(seed)
    expected, late = oracle(trades, 500)
    positions = [(0, i) for i in range(len(trades))]
    proc, topic = windows(), StateTopic()
    outputs, rejected, start = [], [], 0
    rnd = random.Random(seed)
    while start < len(trades):
        end = min(len(trades), start + rnd.randint(1, 400))
        res = run_records(proc, trades[start:end], positions=positions[start:end])
        outputs += res.outputs
        rejected += [start + i for i in res.rejected_indexes()]
        # a restart: state through JSON, then the last few trades are delivered again
        proc = round_trip_state(proc, windows, topic)  # type: ignore[assignment]
        redo = max(0, end - rnd.randint(0, 30))
        assert run_records(proc, trades[redo:end], positions=positions[redo:end]).outputs == []
        start = end
    flushed = proc.flush()
    assert sorted(outputs + flushed, key=lambda b: (b["symbol"], b["window_start"])) == expected
    assert rejected == late and late  # the generator makes late trades


def test_window_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        WindowConfig(size_ms=0)
    with pytest.raises(ValueError, match="must divide size_ms"):
        WindowConfig(size_ms=1000, hop_ms=300)
    snap = {
        "version": 1,
        "kind": "key",
        "key": "A",
        "window": [500, 500],
        "partition": 0,
        "open": [],
        "closed": [],
    }
    with pytest.raises(WindowError, match="made with windows"):
        windows().restore([snap])


def test_the_flagship_pipeline_builds_from_its_config_and_refuses_bad_settings() -> None:
    proc = build_processor("option_trade_time_bars", registry=REG, pipelines_dir=PIPES)
    assert run_records(proc, STREAM).outputs == [A1, B1, A2]
    with pytest.raises(TradesignalsError, match=r"window\.size_ms: Input should be greater than 0"):
        build_processor("option_trade_time_bars", {"window.size_ms": 0}, registry=REG, pipelines_dir=PIPES)
    with pytest.raises(TradesignalsError, match="input schema OptionTrades has no field 'ticker'"):
        build_processor("option_trade_time_bars", {"time_field": "ticker"}, registry=REG, pipelines_dir=PIPES)
