"""The live scorer the scoring pipeline runs (:mod:`tradesignals_dagster.ml.scoring`): its features
are the training features of the same bars, bit for bit, and its signals and state snapshots are
those of the first implementation (``scoring_reference.py``, kept beside the tests) on
in-order, out-of-order, tied and restored input; the trainer's fast gradient-boosting prediction
equals scikit-learn's ``predict_proba``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import scoring_reference as reference

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.scoring import BarScorer, LoadedModel
from tradesignals_dagster.ml.trainers import SklearnTrainer, _tree_predictor
from tradesignals_dagster.streaming.processors.base import is_stateful

FEATURES = list(feats.FEATURES)


def _bars(n: int, symbols: int = 7, seed: int = 1, shuffle_time: bool = False) -> list[dict[str, Any]]:
    """Avro-shaped bars (close as a scaled int); with ``shuffle_time`` some bars arrive late and
    some share a timestamp with another bar of their symbol."""
    rng = np.random.default_rng(seed)
    closes = dict.fromkeys(range(symbols), 100_000)
    out = []
    for i in range(n):
        s = int(rng.integers(0, symbols))
        closes[s] = max(0, closes[s] + int(rng.integers(-300, 301)))
        end = 1_000 * i + 500
        if shuffle_time and rng.random() < 0.3:
            end -= int(rng.integers(0, 4)) * 1_000
        out.append(
            {
                "symbol": f"S{s}",
                "sequence": i // symbols + int(rng.integers(0, 2) if shuffle_time else 0),
                "start_timestamp": end - int(rng.integers(-2, 900)),
                "timestamp": end,
                "close": closes[s],
                "vwap": closes[s] / 10_000 * (1 + rng.normal(0, 0.001)),
                "volume": int(rng.integers(0, 600)),
                "trade_count": int(rng.integers(1, 9)),
            }
        )
    return out


def _gbm() -> Any:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3_000, len(FEATURES))) * [0.01, 0.02, 0.001, 500, 4, 0.5, 1]
    y = (x[:, 0] + x[:, 2] * 5 + rng.normal(0, 0.01, len(x)) > 0).astype(int)
    return SklearnTrainer().fit(x, y, {"max_iter": 20})


def _model(fitted: Any | None = None) -> LoadedModel:
    trainer = SklearnTrainer()
    return LoadedModel(
        model_id="m", version="v1", features=FEATURES, fitted=fitted or _gbm(), trainer=trainer
    )


def _run(scorer: Any, bars: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, len(bars), batch):
        out.extend(scorer.process(bars[i : i + batch]))
    return out


def _snapshots(scorer: Any) -> list[dict[str, Any] | None]:
    return [scorer.snapshot(k) for k in sorted(scorer.dirty_keys())]


class _Recording(SklearnTrainer):
    """Keeps every feature matrix the scorer asks a prediction for."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_up(self, model: Any, x: np.ndarray) -> np.ndarray:
        self.seen.append(x.copy())
        return np.zeros(len(x))


@pytest.mark.parametrize("batch", [1, 5, 37, 1_000])
def test_live_features_are_the_training_features_of_the_same_bars(batch: int) -> None:
    """Bars scored batch by batch get, bit for bit, the features training computes on all of
    them at once (the training rows are ordered by symbol and time, the live ones by arrival)."""
    bars = _bars(500, symbols=11, seed=4)
    trainer = _Recording()
    model = LoadedModel(model_id="m", version="v", features=FEATURES, fitted=None, trainer=trainer)
    _run(BarScorer(model), bars, batch)
    live = np.concatenate(trainer.seen)
    table = pa.table({k: [b[k] for b in bars] for k in feats.BAR_COLUMNS})
    table = table.set_column(4, "close", pa.array([b["close"] / 10_000 for b in bars]))
    table = table.append_column("arrival", pa.array(range(len(bars))))
    frame = feats.bars_frame(table)
    arrival = table.sort_by([("symbol", "ascending"), ("timestamp", "ascending"), ("sequence", "ascending")])[
        "arrival"
    ].to_numpy()
    trained = feats.frame_matrix(frame, FEATURES)
    assert np.count_nonzero(trained[:, FEATURES.index("returns_5")]) > 400
    assert live[arrival].tobytes() == trained.tobytes()


@pytest.mark.parametrize("shuffle_time", [False, True])
@pytest.mark.parametrize("batch", [1, 3, 50, 1_000])
def test_signals_and_snapshots_equal_the_reference_scorer(shuffle_time: bool, batch: int) -> None:
    bars = _bars(1_200, shuffle_time=shuffle_time)
    model = _model()
    fast, slow = BarScorer(model), reference.BarScorer(model)
    got, want = _run(fast, bars, batch), _run(slow, bars, batch)
    assert json.dumps(got) == json.dumps(want)
    assert got == want
    assert json.dumps(_snapshots(fast)) == json.dumps(_snapshots(slow))


def test_a_restart_from_either_scorers_snapshots_scores_alike() -> None:
    bars = _bars(400, shuffle_time=True, seed=3)
    model = _model()
    straight = _run(reference.BarScorer(model), bars, 40)
    for first_cls, second_cls in ((BarScorer, reference.BarScorer), (reference.BarScorer, BarScorer)):
        first = first_cls(model)
        head = _run(first, bars[:213], 40)
        snaps = [json.loads(json.dumps(s)) for s in _snapshots(first)]
        second = second_cls(model)
        second.restore(snaps)
        assert _run(second, bars[213:], 40) == straight[len(head) :]
    cold = _run(BarScorer(model), bars[213:], 40)
    assert [s["probability"] for s in cold] != [s["probability"] for s in straight[213:]]


def test_restore_ignores_unknown_versions_and_malformed_bars() -> None:
    scorer = BarScorer(_model())
    assert is_stateful(scorer)
    scorer.restore(
        [
            {"version": 99, "symbol": "A", "bars": [["A", 1, 2, 3, 4.0, 5.0, 6, 7]]},
            {"version": 1, "symbol": "B", "bars": [["B", "x"]]},
            {"version": 1, "symbol": "C", "bars": [["C", i, 0, i, 1.0, 1.0, 1, 1] for i in range(9)]},
        ]
    )
    assert scorer.snapshot("A") is None and scorer.snapshot("B") is None
    snap = scorer.snapshot("C")
    assert snap is not None and [b[1] for b in snap["bars"]] == [4, 5, 6, 7, 8]


def test_one_signal_per_bar_and_nothing_without_a_model() -> None:
    bars = _bars(30)
    out = BarScorer(_model()).process(bars)
    assert [(s["symbol"], s["sequence"]) for s in out] == [(b["symbol"], b["sequence"]) for b in bars]
    assert {s["model_version"] for s in out} == {"v1"}
    assert BarScorer(None).process(bars) == []
    assert BarScorer(_model()).process([]) == []


def test_many_symbols_grow_the_state() -> None:
    bars = _bars(3_000, symbols=700, seed=9)
    model = _model()
    assert _run(BarScorer(model), bars, 256) == _run(reference.BarScorer(model), bars, 256)


def test_fast_tree_prediction_equals_predict_proba_bit_for_bit() -> None:
    fitted = _gbm()
    assert _tree_predictor(fitted) is not None
    rng = np.random.default_rng(5)
    x = rng.normal(size=(777, len(FEATURES))) * [0.01, 0.02, 0.001, 500, 4, 0.5, 1]
    x[::50, 1] = np.nan
    want = fitted.predict_proba(x)[:, 1]
    assert SklearnTrainer().predict_up(fitted, x).tobytes() == want.tobytes()
    assert SklearnTrainer().predict_up(fitted, x[:1]).tobytes() == want[:1].tobytes()


def test_other_models_go_through_predict_proba() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    logistic = SklearnTrainer().fit(x, (x[:, 0] > 0).astype(int), {"model": "logistic"})
    assert _tree_predictor(logistic) is None
    assert np.array_equal(SklearnTrainer().predict_up(logistic, x), logistic.predict_proba(x)[:, 1])
