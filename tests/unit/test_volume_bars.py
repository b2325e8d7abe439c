"""Unit tests of the per-symbol volume-bar aggregator, with bars worked out by hand."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from flagship_avro import OPTION_TRADES_AGGS
from pydantic import ValidationError

from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.streaming.processors.base import Reject
from tradesignals_dagster.streaming.processors.volume_bars import (
    StateError,
    VolumeBarAggregator,
    VolumeBarsConfig,
    VolumeBarsError,
)

T0 = 1_737_072_000_000


def p(price: str) -> int:
    """A price as the scaled int (scale 4) the aggregator works on."""
    return int(Decimal(price).scaleb(4))


def tr(symbol: str, ts: int, price: str, size: int, oi: int = 0) -> dict[str, Any]:
    return {
        "trade_id": f"{symbol}-{ts}",
        "symbol": symbol,
        "underlying": "X",
        "timestamp": T0 + ts,
        "price": p(price),
        "size": size,
        "oi": oi,
    }


def agg(bar_volume: int = 10, split: bool = False) -> VolumeBarAggregator:
    return VolumeBarAggregator(VolumeBarsConfig(bar_volume=bar_volume, split_trades=split))


def bar(
    symbol: str,
    seq: int,
    start: int,
    end: int,
    ohlc: str,
    volume: int,
    vwap: float,
    count: int,
    oi: int = 0,
) -> dict[str, Any]:
    """The expected bar; times are offsets from T0, ``ohlc`` is "open high low close"."""
    o, h, low, c = (p(x) for x in ohlc.split())
    return {
        "symbol": symbol,
        "sequence": seq,
        "start_timestamp": T0 + start,
        "timestamp": T0 + end,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": volume,
        "vwap": vwap,
        "trade_count": count,
        "oi": oi,
        "price": c,
    }


# -- hand-worked bars ----------------------------------------------------------------------------


@pytest.mark.parametrize("split", [False, True])
def test_trade_exactly_at_the_threshold_closes_the_bar_exactly(split: bool) -> None:
    a = agg(10, split)
    # 4 @ 1.00 + 6 @ 1.20 = 10 contracts; vwap = (4.00 + 7.20) / 10 = 1.12
    bars = a.process([tr("A", 1, "1.00", 4, oi=5), tr("A", 2, "1.20", 6, oi=7)])
    assert bars == [bar("A", 0, 1, 2, "1.00 1.20 1.00 1.20", 10, 1.12, 2, oi=7)]
    snap = a.snapshot("A")
    assert snap is not None and snap["bar"] is None and snap["next_sequence"] == 1
    # the next trade opens a fresh bar
    assert a.process([tr("A", 3, "1.10", 3)]) == []
    snap = a.snapshot("A")
    assert snap is not None and snap["bar"]["volume"] == 3 and snap["bar"]["open"] == p("1.10")


def test_default_mode_a_large_trade_closes_one_bar_with_its_whole_size() -> None:
    a = agg(10)
    # 3 @ 1.00 then 25 @ 2.00 (2.5 thresholds): one bar of 28; vwap = (3 + 50) / 28
    bars = a.process([tr("A", 1, "1.00", 3), tr("A", 2, "2.00", 25, oi=9)])
    assert bars == [bar("A", 0, 1, 2, "1.00 2.00 1.00 2.00", 28, 53 / 28, 2, oi=9)]
    # a lone trade of 35 on an empty bar is one bar too
    assert a.process([tr("A", 3, "1.50", 35)]) == [bar("A", 1, 3, 3, "1.50 1.50 1.50 1.50", 35, 1.5, 1)]
    assert a.snapshot("A") == {
        "version": 1,
        "symbol": "A",
        "price_scale": 4,
        "next_sequence": 2,
        "positions": [],
        "bar": None,
    }


def test_split_mode_a_large_trade_fills_several_bars_and_the_rest_opens_the_next() -> None:
    a = agg(10, split=True)
    bars = a.process([tr("A", 1, "1.00", 3), tr("A", 2, "2.00", 25, oi=4)])
    assert bars == [
        # 3 @ 1.00 + 7 @ 2.00: vwap = (3 + 14) / 10 = 1.7, two pieces
        bar("A", 0, 1, 2, "1.00 2.00 1.00 2.00", 10, 1.7, 2, oi=4),
        # 10 @ 2.00, one piece
        bar("A", 1, 2, 2, "2.00 2.00 2.00 2.00", 10, 2.0, 1, oi=4),
    ]
    # the remaining 8 @ 2.00 are open; 2 @ 3.00 complete them: vwap = (16 + 6) / 10 = 2.2
    assert a.process([tr("A", 3, "3.00", 2, oi=6)]) == [
        bar("A", 2, 2, 3, "2.00 3.00 2.00 3.00", 10, 2.2, 2, oi=6)
    ]


def test_split_mode_a_trade_of_exact_multiples_leaves_no_open_bar() -> None:
    a = agg(10, split=True)
    bars = a.process([tr("A", 1, "0.50", 30)])
    assert [(b["sequence"], b["volume"], b["trade_count"]) for b in bars] == [
        (0, 10, 1),
        (1, 10, 1),
        (2, 10, 1),
    ]
    snap = a.snapshot("A")
    assert snap is not None and snap["bar"] is None and snap["next_sequence"] == 3


def test_split_mode_bars_always_hold_exactly_bar_volume() -> None:
    rnd = random.Random(3)
    a = agg(7, split=True)
    trades = [tr("A", i, "1.00", rnd.randint(0, 40)) for i in range(500)]
    bars = a.process(trades)
    assert all(b["volume"] == 7 for b in bars)
    snap = a.snapshot("A")
    assert snap is not None
    left = snap["bar"]["volume"] if snap["bar"] else 0
    assert len(bars) * 7 + left == sum(t["size"] for t in trades)


def test_interleaved_symbols_keep_separate_bars_and_sequences() -> None:
    a = agg(5)
    trades = [
        tr("A", 1, "1.00", 2),
        tr("B", 2, "5.00", 4),
        tr("C", 3, "9.00", 5),  # C closes at once
        tr("A", 4, "1.10", 2),
        tr("B", 5, "4.00", 1),  # B closes: 4 @ 5.00 + 1 @ 4.00
        tr("A", 6, "0.90", 1),  # A closes: 2 @ 1.00 + 2 @ 1.10 + 1 @ 0.90
        tr("C", 7, "9.50", 6),
    ]
    assert a.process(trades) == [
        bar("C", 0, 3, 3, "9.00 9.00 9.00 9.00", 5, 9.0, 1),
        bar("B", 0, 2, 5, "5.00 5.00 4.00 4.00", 5, 24 / 5, 2),
        bar("A", 0, 1, 6, "1.00 1.10 0.90 0.90", 5, 51 / 50, 3),
        bar("C", 1, 7, 7, "9.50 9.50 9.50 9.50", 6, 9.5, 1),
    ]


def test_equal_timestamps_keep_arrival_order() -> None:
    a = agg(6)
    trades = [tr("A", 5, "2.00", 2), tr("A", 5, "1.00", 2), tr("A", 5, "3.00", 2)]
    assert a.process(trades) == [bar("A", 0, 5, 5, "2.00 3.00 1.00 3.00", 6, 2.0, 3)]


def test_vwap_is_the_exact_ratio_rounded_once() -> None:
    a = agg(3)
    bars = a.process([tr("A", 1, "0.0001", 1), tr("A", 2, "0.0002", 1), tr("A", 3, "0.0002", 1)])
    assert bars[0]["vwap"] == float(Fraction(5, 3 * 10**4))


def test_zero_size_trades_count_but_add_no_volume() -> None:
    a = agg(2)
    bars = a.process([tr("A", 1, "1.00", 0), tr("A", 2, "5.00", 2)])
    assert bars == [bar("A", 0, 1, 2, "1.00 5.00 1.00 5.00", 2, 5.0, 2)]


def test_bars_encode_with_the_aggs_schema_in_scaled_int_mode() -> None:
    bars = agg(10).process([tr("A", 1, "1.00", 4), tr("A", 2, "1.20", 6)])
    data = AvroSerde(OPTION_TRADES_AGGS, 3, decimals="scaled_int").encode(bars[0])
    decoded = AvroSerde(OPTION_TRADES_AGGS, 3).decode(data)
    assert decoded["open"] == Decimal("1.0000") and decoded["price"] == Decimal("1.2000")
    assert decoded["vwap"] == 1.12 and decoded["sequence"] == 0


# -- recovery ------------------------------------------------------------------------------------


def random_trades(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        tr(rnd.choice("ABCDE"), i // 3, f"{rnd.randint(1, 30000) / 100:.2f}", rnd.randint(0, 25), i)
        for i in range(n)
    ]


def json_round_trip(a: VolumeBarAggregator, symbols: set[str]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(a.snapshot(s))) for s in sorted(symbols)]


@pytest.mark.parametrize("split", [False, True])
def test_snapshot_restore_mid_bar_gives_the_same_bars_as_an_uninterrupted_run(split: bool) -> None:
    trades = random_trades(2000, seed=1)
    positions = [(0, i) for i in range(len(trades))]
    expected = agg(40, split).process(trades, positions)

    first = agg(40, split)
    head = first.process(trades[:1237], positions[:1237])
    snaps = json_round_trip(first, first.dirty_keys())
    assert any(s["bar"] for s in snaps)  # some bars really are open mid-way

    second = agg(40, split)
    second.restore(snaps)
    tail = second.process(trades[1237:], positions[1237:])
    assert head + tail == expected


@pytest.mark.parametrize("split", [False, True])
def test_replayed_trades_are_ignored_after_restore(split: bool) -> None:
    trades = random_trades(1500, seed=2)
    positions = [(i % 2, i // 2) for i in range(len(trades))]  # two source partitions
    expected = agg(30, split).process(trades, positions)

    first = agg(30, split)
    head = first.process(trades[:800], positions[:800])
    snaps = json_round_trip(first, first.dirty_keys())
    second = agg(30, split)
    second.restore(snaps)
    # the runtime rewinds to an earlier committed offset: everything is replayed
    replay = second.process(trades[300:], positions[300:])
    assert head + replay == expected


def test_replaying_in_the_same_aggregator_is_a_no_op() -> None:
    a = agg(10)
    trades = [tr("A", 1, "1.00", 4), tr("A", 2, "1.00", 4), tr("B", 3, "2.00", 12)]
    positions = [(0, 10), (0, 11), (1, 5)]
    assert len(a.process(trades, positions)) == 1
    assert a.dirty_keys() == {"A", "B"}
    before = (a.snapshot("A"), a.snapshot("B"))
    assert a.process(trades, positions) == []
    assert a.process(trades[1:2], [(0, 9)]) == []  # an even older offset
    assert (a.snapshot("A"), a.snapshot("B")) == before
    assert a.dirty_keys() == set()
    # the same offset on another partition is a different trade
    assert a.process([tr("A", 4, "1.00", 2)], [(1, 11)])[0]["volume"] == 10
    snap = a.snapshot("A")
    assert snap is not None and snap["positions"] == [[0, 11], [1, 11]]


def test_sequence_continues_after_restore() -> None:
    a = agg(10)
    a.restore(
        [
            {
                "version": 1,
                "symbol": "A",
                "price_scale": 4,
                "next_sequence": 41,
                "positions": [[0, 99]],
                "bar": {
                    "start_timestamp": T0,
                    "timestamp": T0 + 1,
                    "open": p("1.00"),
                    "high": p("1.50"),
                    "low": p("1.00"),
                    "close": p("1.50"),
                    "volume": 6,
                    "notional": p("1.00") * 2 + p("1.50") * 4,
                    "trade_count": 2,
                    "oi": 3,
                },
            }
        ]
    )
    assert a.dirty_keys() == set()  # restored state is already persisted
    assert a.process([tr("A", 2, "2.00", 1)], [(0, 99)]) == []  # already applied
    bars = a.process([tr("A", 2, "0.50", 4, oi=8)], [(0, 100)])
    # 2 @ 1.00 + 4 @ 1.50 + 4 @ 0.50 = 10 contracts, notional 2 + 6 + 2 = 10
    assert bars == [bar("A", 41, 0, 2, "1.00 1.50 0.50 0.50", 10, 1.0, 3, oi=8)]
    assert a.process([tr("A", 3, "1.00", 10)], [(0, 101)])[0]["sequence"] == 42


def test_dirty_keys_tracks_changes_since_the_last_call() -> None:
    a = agg(10)
    assert a.dirty_keys() == set()
    a.process([tr("A", 1, "1.00", 1), tr("B", 1, "1.00", 12)])
    assert a.dirty_keys() == {"A", "B"}
    assert a.dirty_keys() == set()
    a.process([tr("C", 2, "1.00", 1)])
    assert a.dirty_keys() == {"C"}
    assert a.snapshot("nope") is None


# -- errors --------------------------------------------------------------------------------------


def test_config_is_strict() -> None:
    assert VolumeBarsConfig(bar_volume=100).split_trades is False
    with pytest.raises(ValidationError):
        VolumeBarsConfig(bar_volume=0)
    with pytest.raises(ValidationError):
        VolumeBarsConfig(bar_volume=10, window="1m")  # type: ignore[call-arg]
    fields = VolumeBarsConfig.model_fields
    assert all(fields[name].description for name in ("bar_volume", "split_trades"))


def test_a_bad_trade_is_rejected_and_the_trades_around_it_are_applied() -> None:
    a = agg(5)
    trades = [tr("A", 1, "1.00", 5), tr("A", 2, "1.00", 2), tr("A", 3, "1.00", -1), tr("A", 4, "1.00", 1)]
    out = a.process(trades, [(0, 0), (0, 1), (0, 2), (0, 3)])
    assert [type(o).__name__ for o in out] == ["dict", "Reject"]
    assert out[0]["sequence"] == 0
    reject = out[1]
    assert isinstance(reject, Reject)
    assert reject.record is trades[2] and reject.position == (0, 2)
    assert reject.error_type == "InvalidTradeError" and reject.reason == "size -1 is negative"
    snap = a.snapshot("A")
    assert snap is not None and snap["bar"]["volume"] == 3 and snap["positions"] == [[0, 3]]

    missing = tr("A", 5, "1.00", 1)
    del missing["oi"]
    bad = [
        missing,
        {**tr("A", 5, "1.00", 1), "price": Decimal("1.00")},
        {**tr("A", 5, "1.00", 1), "size": None},
    ]
    rejects = a.process(bad)
    assert all(isinstance(r, Reject) for r in rejects), rejects
    reasons = [r.reason for r in rejects]
    assert reasons[0] == "missing field 'oi'"
    assert re.match(r"price must be a scaled int.*Decimal", reasons[1]), reasons
    assert "size must be an int, got NoneType" in reasons[2], reasons
    snap = a.snapshot("A")
    assert snap is not None and snap["bar"]["volume"] == 3  # nothing partially applied
    with pytest.raises(VolumeBarsError, match="differ in length"):
        a.process([tr("A", 5, "1.00", 1)], [])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": 2}, "unsupported version 2"),
        ({"price_scale": 2}, "10\\^-2, this aggregator uses 10\\^-4"),
        ({"next_sequence": "3"}, "next_sequence must be an integer"),
        ({"positions": [[0]]}, "malformed"),
        ({"bar": {"volume": 1}}, "malformed"),
        ({"symbol": ""}, "non-empty string"),
    ],
)
def test_restore_rejects_bad_snapshots(change: dict[str, Any], reason: str) -> None:
    a = agg(10)
    a.process([tr("A", 1, "1.00", 3)])
    snap = a.snapshot("A")
    assert snap is not None
    with pytest.raises(StateError, match=reason):
        agg(10).restore([{**snap, **change}])
