"""Features against hand-computed values, the target, the time-ordered split, the version hash."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.errors import InvalidTrainingInput
from tradesignals_dagster.ml.evaluation import evaluate, time_split
from tradesignals_dagster.ml.store import model_version

# Two symbols interleaved out of order, prices as Parquet decimals like the dataset's.
BARS = pa.table(
    {
        "symbol": ["A", "B", "A", "A", "B"],
        "sequence": [1, 0, 0, 2, 1],
        "start_timestamp": [1000, 0, 0, 2000, 500],
        "timestamp": [2000, 500, 1000, 2500, 1500],
        "close": pa.array([Decimal(x) for x in ("11", "5", "10", "9", "6")], pa.decimal128(12, 4)),
        "vwap": [10.0, 5.0, 10.0, 10.0, 5.0],
        "volume": [100, 50, 100, 100, 50],
        "trade_count": [4, 2, 3, 5, 1],
    }
)


def test_features_match_hand_computed_values() -> None:
    frame = feats.bars_frame(BARS)
    assert frame["symbol"].to_pylist() == ["A", "A", "A", "B", "B"]
    assert frame["sequence"].to_pylist() == [0, 1, 2, 0, 1]
    out = feats.feature_table(frame, list(feats.FEATURES)).to_pydict()
    assert out["returns_1"] == pytest.approx([0.0, 11 / 10 - 1, 9 / 11 - 1, 0.0, 6 / 5 - 1])
    assert out["returns_5"] == [0.0] * 5  # no symbol has five earlier bars
    assert out["vwap_gap"] == pytest.approx([0.0, 0.1, -0.1, 0.0, 0.2])
    assert out["volume_rate"] == pytest.approx([100.0, 100.0, 200.0, 100.0, 50.0])
    assert out["trade_count"] == [3.0, 4.0, 5.0, 2.0, 1.0]
    assert out["bar_seconds"] == pytest.approx([1.0, 1.0, 0.5, 0.5, 1.0])
    assert out["last_direction"] == [0.0, 1.0, -1.0, 0.0, 1.0]


def test_returns_5_reaches_five_bars_back_within_the_symbol() -> None:
    n = 7
    table = pa.table(
        {
            "symbol": ["A"] * n,
            "sequence": list(range(n)),
            "start_timestamp": list(range(n)),
            "timestamp": list(range(1, n + 1)),
            "close": [float(10 + i) for i in range(n)],
            "vwap": [1.0] * n,
            "volume": [1] * n,
            "trade_count": [1] * n,
        }
    )
    out = feats.feature_table(feats.bars_frame(table), ["returns_5"])["returns_5"].to_pylist()
    assert out == pytest.approx([0, 0, 0, 0, 0, 15 / 10 - 1, 16 / 11 - 1])


def test_target_is_next_close_higher_within_the_symbol() -> None:
    frame = feats.bars_frame(BARS)
    assert feats.next_bar_direction(frame).to_pylist() == [1, 0, None, 1, None]


def test_a_missing_column_is_a_clear_error() -> None:
    with pytest.raises(InvalidTrainingInput, match="vwap"):
        feats.bars_frame(BARS.drop_columns(["vwap"]))


def test_time_split_holds_out_the_newest_rows() -> None:
    ts = np.array([50, 10, 40, 20, 30, 60, 70, 80, 90, 100])
    train, test = time_split(ts, 0.3)
    assert sorted(ts[train].tolist()) == [10, 20, 30, 40, 50, 60, 70]
    assert sorted(ts[test].tolist()) == [80, 90, 100]
    assert ts[train].max() < ts[test].min()


def test_time_split_keeps_ties_on_the_training_side() -> None:
    ts = np.array([1, 2, 3, 3, 3, 4])
    train, test = time_split(ts, 0.5)
    assert sorted(ts[test].tolist()) == [4]
    assert ts[train].max() < ts[test].min()


def test_time_split_refuses_an_empty_side() -> None:
    with pytest.raises(InvalidTrainingInput):
        time_split(np.array([5, 5, 5, 5]), 0.25)


def test_version_is_stable_and_changes_with_each_input() -> None:
    parts = [{"day": "2026-01-01", "files": [["part-00000.parquet", 123]], "rows": 10}]
    spec = {"features": ["returns_1"], "params": {"max_iter": 10}}
    base = model_version(parts, "code", spec)
    assert base == model_version([dict(p) for p in parts], "code", dict(spec))
    other_parts = [{**parts[0], "rows": 11}]
    assert model_version(other_parts, "code", spec) != base
    assert model_version(parts, "code2", spec) != base
    assert model_version(parts, "code", {**spec, "params": {"max_iter": 11}}) != base


def test_a_coin_flip_model_does_not_beat_the_baseline() -> None:
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 2000), rng.integers(0, 2, 500)
    last_train, last_test = rng.choice([-1.0, 1.0], 2000), rng.choice([-1.0, 1.0], 500)
    ev = evaluate(y_train, y_test, rng.random(500), last_train, last_test)
    assert not ev.passed
    perfect = evaluate(y_train, y_test, y_test * 0.8 + 0.1, last_train, last_test)
    assert perfect.passed, perfect.reason


def test_missing_values_zero_prices_and_null_symbols() -> None:
    """A missing start counts as a 1 ms bar; a zero or missing price gives 0.0, never inf or NaN;
    bars without a symbol see no history (the semantics of the Arrow implementation kept)."""
    table = pa.table(
        {
            "symbol": ["A", "A", "A", None, None],
            "sequence": [0, 1, 2, 0, 1],
            "start_timestamp": pa.array([0, None, 2000, 0, 10], pa.int64()),
            "timestamp": [1000, 2000, 2500, 1000, 20],
            "close": pa.array([0.0, 2.0, None, 4.0, 5.0]),
            "vwap": [1.0, 2.0, 2.0, 0.0, 5.0],
            "volume": [10, 20, 30, 40, 50],
            "trade_count": [1, 2, 3, 4, 5],
        }
    )
    out = feats.feature_table(feats.bars_frame(table, sort=False), list(feats.FEATURES)).to_pydict()
    assert out["volume_rate"] == [10.0, 20_000.0, 60.0, 40.0, 5_000.0]
    assert out["bar_seconds"] == [1.0, 0.0, 0.5, 1.0, 0.01]
    assert out["returns_1"] == [0.0, 0.0, 0.0, 0.0, 0.0]  # 2/0, missing close, no history
    assert out["last_direction"] == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert out["vwap_gap"] == [-1.0, 0.0, 0.0, 0.0, 0.0]
