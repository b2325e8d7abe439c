"""One training run: read the window of dataset partitions, build features and the target,
fit on the older rows, evaluate on the newest, version and store the artifact.

:func:`train` never promotes; the caller (the ``models/<id>`` asset) promotes only a version that
passed :mod:`~tradesignals_dagster.ml.evaluation`. Any failure raises before anything is
written, so a failing run leaves the promoted model as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from tradesignals_dagster.datasets.store import ObjectStore
from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.errors import InvalidTrainingInput
from tradesignals_dagster.ml.evaluation import Evaluation, evaluate, time_split
from tradesignals_dagster.ml.store import ModelStore, feature_code_hash, model_version
from tradesignals_dagster.ml.trainers import trainer_for
from tradesignals_dagster.registry.models_ml import StreamingModel

MIN_ROWS = 20
"""Fewer labelled rows than this is not a training set."""


@dataclass
class TrainingResult:
    """What a run made: the version, its card, the evaluation and whether it was already stored."""

    version: str
    card: dict[str, Any]
    evaluation: Evaluation
    seconds: float


def partition_files(store: ObjectStore, dataset_id: str) -> dict[date, list[pafs.FileInfo]]:
    """The Parquet files of each exported day (``dt=YYYY-MM-DD``) of the dataset."""
    selector = pafs.FileSelector(store.path(dataset_id), allow_not_found=True, recursive=True)
    days: dict[date, list[pafs.FileInfo]] = {}
    for info in store.call("list", lambda: store.filesystem.get_file_info(selector)):
        if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
            continue
        folder = info.path.rsplit("/", 2)[-2]
        if not folder.startswith("dt="):
            continue
        try:
            day = date.fromisoformat(folder[3:])
        except ValueError:
            continue
        days.setdefault(day, []).append(info)
    return days


def read_window(store: ObjectStore, model: StreamingModel) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The bar columns of the newest ``training_window_days`` exported days, and a fingerprint of
    each day (day, file names and sizes, rows) for the version."""
    days = partition_files(store, model.dataset_id)
    window = sorted(days)[-model.training_window_days :]
    if not window:
        raise InvalidTrainingInput(
            f"model '{model.key}': empty training window - dataset '{model.dataset_id}' has no exported "
            f"day under {store.uri(model.dataset_id)}; materialize datasets/{model.dataset_id} first"
        )
    tables, parts = [], []
    for day in window:
        files = sorted(days[day], key=lambda i: i.path)
        rows = 0
        for info in files:
            table = store.call(
                "read",
                lambda p=info.path: pq.read_table(
                    p, filesystem=store.filesystem, columns=list(feats.BAR_COLUMNS)
                ),
            )
            rows += table.num_rows
            tables.append(table)
        parts.append({"day": day.isoformat(), "files": [[i.base_name, i.size] for i in files], "rows": rows})
    return pa.concat_tables(tables, promote_options="permissive"), parts


def spec_of(model: StreamingModel) -> dict[str, Any]:
    """The registry entry's fields that change what is trained (not ``doc`` or the topic)."""
    return model.model_dump(mode="json", exclude={"doc", "signals_topic_id", "key"})


def train(
    store: ObjectStore, model: StreamingModel, previous: dict[str, Any] | None = None
) -> TrainingResult:
    """Train ``model`` on its window and write the versioned artifact (never promoted here)."""
    started = time.perf_counter()
    trainer = trainer_for(model.trainer)
    table, parts = read_window(store, model)
    frame = feats.bars_frame(table)
    target = feats.next_bar_direction(frame)
    labelled = pc.is_valid(target)
    frame = frame.filter(labelled)
    y = target.filter(labelled).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(y) < MIN_ROWS:
        raise InvalidTrainingInput(
            f"model '{model.key}': {len(y)} labelled bars in the window ({len(parts)} day(s)); "
            f"need {MIN_ROWS}"
        )
    x = feats.frame_matrix(frame, model.features)
    last = feats.frame_matrix(frame, ["last_direction"])[:, 0]
    train_idx, test_idx = time_split(frame["timestamp"].to_numpy(), model.holdout_fraction)
    fitted = trainer.fit(x[train_idx], y[train_idx], model.params)
    p_test = trainer.predict_up(fitted, x[test_idx])
    evaluation = evaluate(
        y[train_idx], y[test_idx], p_test, last[train_idx], last[test_idx], model.min_improvement
    )
    version = model_version(parts, feature_code_hash(), spec_of(model))
    seconds = time.perf_counter() - started
    card = {
        "model": model.key,
        "version": version,
        "dataset": model.dataset_id,
        "trainer": trainer.name,
        "target": model.target,
        "features": model.features,
        "params": model.params,
        "partitions": parts,
        "rows": len(y),
        "metrics": evaluation.as_dict(),
        "previous": previous,
        "training_seconds": round(seconds, 3),
    }
    ModelStore(store, model.key).write(version, trainer.dumps(fitted), card)
    return TrainingResult(version, card, evaluation, seconds)
