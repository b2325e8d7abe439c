"""Models end to end on a ``file://`` object store: a dataset written as the export writes it,
``models/volume_bar_direction`` materialized by Dagster on the flagship registry, promotion only
on a passing check, the scoring pipeline's own ``build`` scoring bars with the promoted version,
the version in the scoring pipeline's desired state, and a corrupt artifact refused.

No Kafka here: the scoring processor is run by the test on Avro-shaped records (decimals as
scaled ints), exactly what the runtime hands it.
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradesignals_dagster.datasets.store import object_store
from tradesignals_dagster.defs.models import CHECK, model_asset, run_training
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.ml.errors import CorruptArtifact, InvalidTrainingInput
from tradesignals_dagster.ml.scoring import load_promoted
from tradesignals_dagster.ml.store import ModelStore
from tradesignals_dagster.registry import load_application
from tradesignals_dagster.settings import load_settings
from tradesignals_dagster.streaming.processors.base import BuildContext

ROOT = Path(__file__).resolve().parents[2]
MODEL = "volume_bar_direction"
SCORING = "volume_bar_direction_scoring"
DATASET = "option_volume_bars"


def _day_bars(day: date, learnable: bool, seed: int, symbols: int = 8, per_symbol: int = 150) -> pa.Table:
    """Bars of one day; when ``learnable`` the next bar's direction follows the sign of this bar's
    close - vwap 85% of the time, else it is a coin flip."""
    rng = np.random.default_rng(seed)
    t0 = int(np.datetime64(day.isoformat(), "ms").astype(np.int64))
    cols: dict[str, list[Any]] = {k: [] for k in ("symbol", "sequence", "start_timestamp", "timestamp")}
    closes, vwaps = [], []
    for s in range(symbols):
        close = 10.0
        for i in range(per_symbol):
            gap = rng.choice([-0.01, 0.01])
            cols["symbol"].append(f"SYM{s}")
            cols["sequence"].append(i)
            cols["start_timestamp"].append(t0 + i * 1000 + s)
            cols["timestamp"].append(t0 + i * 1000 + 500 + s)
            closes.append(round(close, 4))
            vwaps.append(close / (1 + gap))
            up = (gap > 0) == (rng.random() < 0.85) if learnable else rng.random() < 0.5
            close = max(0.5, close * (1.01 if up else 0.99))
    n = len(closes)
    return pa.table(
        {
            **{k: cols[k] for k in ("symbol", "sequence")},
            "start_timestamp": pa.array(cols["start_timestamp"], pa.timestamp("ms", tz="UTC")),
            "timestamp": pa.array(cols["timestamp"], pa.timestamp("ms", tz="UTC")),
            "close": pa.array([Decimal(f"{c:.4f}") for c in closes], pa.decimal128(12, 4)),
            "vwap": vwaps,
            "volume": rng.integers(400, 600, n),
            "trade_count": pa.array(rng.integers(1, 20, n), pa.int32()),
        }
    )


def _write_days(store_dir: Path, first: date, days: int, learnable: bool, seed: int) -> None:
    for k in range(days):
        day = first + timedelta(days=k)
        folder = store_dir / DATASET / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(_day_bars(day, learnable, seed + k), folder / "part-00000.parquet", compression="zstd")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    monkeypatch.setenv("TRADESIGNALS_OBJECT_STORE_URL", store_dir.as_uri())
    state = tmp_path / "state"
    settings = load_settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=state)
    resource = TradesignalsResource(
        registry=str(ROOT / "registry"), pipelines_dir=str(ROOT / "pipelines"), state_dir=str(state)
    )
    app = load_application(ROOT / "registry", ROOT / "pipelines")
    return {"store": store_dir, "settings": settings, "resource": resource, "app": app}


def _materialize(env: dict[str, Any]) -> dg.ExecuteInProcessResult:
    asset = model_asset(env["app"], env["app"].models[MODEL])
    return dg.materialize([asset], resources={"tradesignals": env["resource"]}, raise_on_error=False)


def _scorer(env: dict[str, Any]) -> Any:
    spec = importlib.util.spec_from_file_location("scoring_app", ROOT / "pipelines" / SCORING / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = env["app"]
    ctx = BuildContext(
        app=app,
        pipeline=app.pipelines[SCORING],
        config={"model_id": MODEL},
        input_schema=app.schemas["option_trades_aggs"],
        output_schema=app.schemas["option_bar_signals"],
    )
    return module.build(ctx)


def _records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as the runtime decodes them: decimals as scaled ints, timestamps as epoch millis."""
    out = []
    for row in table.to_pylist():
        out.append(
            {
                **row,
                "close": int(row["close"] * 10_000),
                "start_timestamp": int(row["start_timestamp"].timestamp() * 1000),
                "timestamp": int(row["timestamp"].timestamp() * 1000),
            }
        )
    return out


def test_train_promote_score_and_roll_forward(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    models = ModelStore(object_store(env["settings"]), MODEL)
    with pytest.raises(InvalidTrainingInput, match="empty training window"):
        run_training(env["app"].models[MODEL], env["settings"])

    _write_days(env["store"], date(2026, 3, 1), 3, learnable=True, seed=1)
    result = _materialize(env)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [(CHECK, True)]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    first = meta["version"].value
    assert meta["promoted"].value is True
    assert models.current() == first
    assert meta["training_partitions"].value == ["2026-03-01", "2026-03-02", "2026-03-03"]

    # Same data, same code, same params: the same version.
    again = _materialize(env).get_asset_materialization_events()[0].materialization.metadata
    assert again["version"].value == first

    # The scoring pipeline's desired state pins the promoted version.
    pinned = desired_state(env["app"], SCORING, env["settings"])
    assert pinned.env["TRADESIGNALS_MODEL_VERSION"] == first
    assert (
        "TRADESIGNALS_MODEL_VERSION"
        not in desired_state(env["app"], "option_trade_volume_bars", env["settings"]).env
    )

    # The pipeline's own build scores one signal per bar with that version.
    monkeypatch.setenv("TRADESIGNALS_MODEL_VERSION", first)
    scorer = _scorer(env)
    bars = _day_bars(date(2026, 3, 4), learnable=True, seed=99, symbols=3, per_symbol=20)
    signals = scorer.process(_records(bars))
    assert len(signals) == bars.num_rows
    assert {s["model_version"] for s in signals} == {first}
    assert [(s["symbol"], s["sequence"]) for s in signals] == list(
        zip(bars["symbol"].to_pylist(), bars["sequence"].to_pylist(), strict=True)
    )
    assert all(0.0 <= s["probability"] <= 1.0 for s in signals)
    # The live features equal the training features: scoring bar by bar gives the same
    # probabilities as scoring the whole day at once.
    one_by_one = _scorer(env)
    singles = [one_by_one.process([r])[0]["probability"] for r in _records(bars)]
    assert singles == pytest.approx([s["probability"] for s in signals])

    # A new exported day makes a new version, promoted, and the desired state follows it.
    _write_days(env["store"], date(2026, 3, 4), 1, learnable=True, seed=50)
    second = _materialize(env).get_asset_materialization_events()[0].materialization.metadata
    assert second["version"].value != first and second["promoted"].value is True
    assert second["previous_version"].value == first
    rolled = desired_state(env["app"], SCORING, env["settings"])
    assert rolled.env["TRADESIGNALS_MODEL_VERSION"] == second["version"].value
    assert rolled.config_hash != pinned.config_hash

    # Coin-flip days only: the check fails and the promoted version stays.
    shutil.rmtree(env["store"] / DATASET)
    _write_days(env["store"], date(2026, 4, 1), 3, learnable=False, seed=7)
    failed = _materialize(env)
    assert [(c.check_name, c.passed) for c in failed.get_asset_check_evaluations()] == [(CHECK, False)]
    assert failed.get_asset_materialization_events()[0].materialization.metadata["promoted"].value is False
    assert models.current() == second["version"].value


def test_a_corrupt_artifact_is_a_clear_error(env: dict[str, Any]) -> None:
    _write_days(env["store"], date(2026, 3, 1), 2, learnable=True, seed=3)
    version = (
        _materialize(env).get_asset_materialization_events()[0].materialization.metadata["version"].value
    )
    artifact = env["store"] / "_models" / MODEL / "versions" / version / "model.bin"
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptArtifact, match="does not match the checksum"):
        load_promoted(MODEL, env["settings"])
