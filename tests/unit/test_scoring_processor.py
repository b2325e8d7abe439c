"""The scoring processor: one signal per bar in order, no output before a promotion, and a
restart from its state snapshots scores exactly as an uninterrupted run."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tradesignals_dagster.ml.scoring import BarScorer, LoadedModel
from tradesignals_dagster.ml.trainers import SklearnTrainer
from tradesignals_dagster.streaming.processors.base import is_stateful

FEATURES = ["returns_1", "returns_5", "vwap_gap", "last_direction"]


def _model() -> LoadedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    trainer = SklearnTrainer()
    fitted = trainer.fit(x * 0.01, y, {"model": "logistic"})
    return LoadedModel(model_id="m", version="v1", features=FEATURES, fitted=fitted, trainer=trainer)


def _bars(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    closes = {s: 100_000 for s in ("A", "B", "C")}
    out = []
    for i in range(n):
        sym = "ABC"[i % 3]
        closes[sym] += int(rng.integers(-300, 301))
        out.append(
            {
                "symbol": sym,
                "sequence": i // 3,
                "start_timestamp": 1_000 * i,
                "timestamp": 1_000 * i + 500,
                "close": closes[sym],
                "vwap": closes[sym] / 10_000 * 1.001,
                "volume": 500,
                "trade_count": 3,
            }
        )
    return out


def test_one_signal_per_bar_in_order_with_the_version() -> None:
    bars = _bars(30)
    out = BarScorer(_model()).process(bars)
    assert [(s["symbol"], s["sequence"]) for s in out] == [(b["symbol"], b["sequence"]) for b in bars]
    assert {s["model_version"] for s in out} == {"v1"}
    assert len({round(s["probability"], 9) for s in out}) > 1


def test_without_a_promoted_model_nothing_is_published() -> None:
    assert BarScorer(None).process(_bars(5)) == []


def test_a_restart_from_snapshots_scores_like_an_uninterrupted_run() -> None:
    bars = _bars(60)
    model = _model()
    straight = BarScorer(model).process(bars)
    first = BarScorer(model)
    assert is_stateful(first)
    head = first.process(bars[:33])
    snaps = [json.loads(json.dumps(first.snapshot(k))) for k in sorted(first.dirty_keys())]
    second = BarScorer(model)
    second.restore(snaps)
    tail = second.process(bars[33:])
    assert [s["probability"] for s in head + tail] == [s["probability"] for s in straight]
    cold = BarScorer(model).process(bars[33:])
    assert [s["probability"] for s in cold] != [s["probability"] for s in tail]
