"""The scoring pipeline on a real broker: trades -> volume bars -> signals, one signal per bar with
the promoted model version; a newly promoted version changes the pipeline's desired state.

The registry is the session's prefixed one (``write_env``) plus a table, a dataset, a model and
the scoring pipeline; the dataset is written to a ``file://`` object store, the model trained and
promoted there, and the three pipelines run as processes exactly as the supervisor starts them.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from test_models import _day_bars
from test_pipelines_support import (
    PROJECT,
    caught_up,
    decode_all,
    flagship_schema,
    read_topic,
    start_process,
    stop_process,
    wait_for,
    wait_started,
    write_env,
)

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.defs.models import run_training
from tradesignals_dagster.deploy.desired import desired_state


def _add_model(env: Any) -> dict[str, str]:
    p = env.prefix
    names = {
        "signals": f"{p}_signals",
        "table": f"{p}_bars_t",
        "dataset": f"{p}_ds",
        "model": f"{p}_m",
        "score": f"{p}_score",
    }
    registry = env.settings.registry
    (registry / "schemas" / "option_bar_signals.yaml").write_text(
        yaml.safe_dump(flagship_schema("option_bar_signals"))
    )
    doc = yaml.safe_load((registry / "pipelines.yaml").read_text())
    root = doc["StreamingApplication"]
    root["Topics"][names["signals"]] = {
        "num_partitions": 3,
        "replication_factor": 1,
        "min_insync_replicas": 1,
        "retention_ms": 86_400_000,
        "value_schema_id": "option_bar_signals",
    }
    root["Pipelines"][names["score"]] = {
        "input": {"type": "kafka", "kafka_topic_id": env.bars, "consumer_group_id": f"{p}_score"},
        "output": {"topic_id": names["signals"], "publisher_id": "tradesignals", "dataset_id": "signals"},
    }
    root["Tables"] = {names["table"]: {"topic_id": env.bars, "order_by": ["symbol", "timestamp"]}}
    root["Datasets"] = {names["dataset"]: {"table_id": names["table"], "start_date": "2026-01-01"}}
    root["Models"] = {
        names["model"]: {
            "dataset_id": names["dataset"],
            "features": ["returns_1", "returns_5", "vwap_gap", "last_direction"],
            "training_window_days": 3,
            "signals_topic_id": names["signals"],
            "params": {"model": "logistic"},
        }
    }
    (registry / "pipelines.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    folder = env.settings.pipelines_dir / names["score"]
    folder.mkdir()
    shutil.copy(PROJECT / "pipelines" / "volume_bar_direction_scoring" / "app.py", folder / "app.py")
    (folder / "config.yaml").write_text(yaml.safe_dump({"model_id": names["model"]}))
    app = env.reload()
    plane = ControlPlane.from_settings(env.settings)
    # Topics and schemas only (the table is there for the lineage; no ClickHouse in this test).
    topics = {*app.topics, f"{env.bars}.dlq", f"{names['score']}.state"}
    plane.apply(plane.plan(app, topics=topics, subjects=set(app.subjects.values())))
    return names


def _write_days(store: Path, dataset: str, first: date, days: int, seed: int) -> None:
    for k in range(days):
        day = first + timedelta(days=k)
        folder = store / dataset / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(_day_bars(day, True, seed + k), folder / "part-00000.parquet")


def test_scoring_pipeline_publishes_one_signal_per_bar_with_the_promoted_version(
    tmp_path: Path, stack: Any
) -> None:
    env = write_env(
        tmp_path,
        stack,
        ingest_input={
            "type": "synthetic",
            "additional_metadata": {"symbols": "6", "seed": "3", "count": "3000"},
        },
        bars_config={"bar_volume": 100},
    )
    names = _add_model(env)
    store = tmp_path / "store"
    env.settings = env.settings.model_copy(update={"object_store_url": store.as_uri()})
    _write_days(store, names["dataset"], date(2026, 3, 1), 3, seed=11)
    result, promoted, _, _ = run_training(env.app.models[names["model"]], env.settings)
    assert promoted, result.evaluation.reason
    desired = desired_state(env.app, names["score"], env.settings)
    assert desired.env["TRADESIGNALS_MODEL_VERSION"] == result.version

    extra = {"TRADESIGNALS_OBJECT_STORE_URL": store.as_uri()}
    procs = []
    try:
        for key in (names["score"], env.bars_pipeline, env.ingest):
            proc = start_process(env, key, extra)
            procs.append(proc)
            if key != env.ingest:
                wait_started(env, key, proc)
        wait_for(lambda: procs[2].poll() is not None, 120, what="the finite ingest to finish")
        wait_for(lambda: caught_up(env, f"{env.prefix}_group", env.trades), 120, what="bars caught up")
        wait_for(lambda: caught_up(env, f"{env.prefix}_score", env.bars), 120, what="scoring caught up")
        for proc in procs[:2]:
            assert stop_process(proc) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    bars = decode_all(env, env.bars, read_topic(env, env.bars))
    signals_msgs = read_topic(env, names["signals"])
    signals = decode_all(env, names["signals"], signals_msgs)
    assert bars, "no bars were made"
    assert sorted((s["symbol"], s["sequence"]) for s in signals) == sorted(
        (b["symbol"], b["sequence"]) for b in bars
    )
    assert {s["model_version"] for s in signals} == {result.version}
    assert all(0.0 <= s["probability"] <= 1.0 for s in signals)
    assert {m.headers.get("ts-id") for m in signals_msgs} == {
        f"{s['symbol']}:{s['sequence']}" for s in signals
    }

    # A newly promoted version is a new desired state: the redeploy sensor restarts the pipeline.
    _write_days(store, names["dataset"], date(2026, 3, 4), 1, seed=40)
    newer, promoted_again, _, _ = run_training(env.app.models[names["model"]], env.settings)
    assert promoted_again and newer.version != result.version
    rolled = desired_state(env.app, names["score"], env.settings)
    assert rolled.env["TRADESIGNALS_MODEL_VERSION"] == newer.version
    assert rolled.config_hash != desired.config_hash


pytestmark = pytest.mark.timeout(600)
