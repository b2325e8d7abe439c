"""The ``Models`` section: ML models trained on the Parquet datasets, optionally scored live.

A model is named by its mapping key, trains on ``dataset_id`` (a key of ``Datasets``) over the
last ``training_window_days`` exported days, predicts ``target`` from ``features`` (names from
the feature catalogue in :mod:`tradesignals_dagster.ml.features`, each needing some dataset
columns) with ``trainer``, and, when ``signals_topic_id`` is set, is scored live onto that topic
by the pipeline that reads the dataset's topic and writes the signals topic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.registry.tables import table_name_problem

TRAINERS = ("sklearn",)
"""Trainers the registry accepts (see :func:`tradesignals_dagster.ml.trainers.trainer_for`)."""


class StreamingModel(BaseModel):
    """One model trained on a dataset (``Models.<id>``; the id names the model)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    key: str = Field(description="Model id (the mapping key): the asset key and artifact folder.")
    dataset_id: str = Field(description="The dataset (a key of `Datasets`) the model trains on.")
    target: Literal["next_bar_direction"] = Field(
        "next_bar_direction",
        description="What is predicted: next_bar_direction = the next bar of the same symbol closes higher.",
    )
    features: list[str] = Field(
        min_length=1, description="Feature names (the catalogue in tradesignals_dagster.ml.features)."
    )
    training_window_days: int = Field(
        20, ge=1, le=366, description="How many of the newest exported days the model trains on."
    )
    trainer: str = Field("sklearn", description="The trainer (sklearn: gradient boosting or logistic).")
    signals_topic_id: str | None = Field(
        None, description="Topic the live scoring pipeline publishes predictions to, if any."
    )
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Newest share of rows (by time) held out for evaluation."
    )
    min_improvement: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Accuracy the model must add over the best naive baseline to be promoted.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Trainer parameters (for sklearn: model plus estimator params)."
    )
    doc: str | None = Field(None, description="What the model is for, for its readers.")


def load_models(loc: Any, ctx: Any) -> dict[str, StreamingModel]:
    """Validate the ``Models`` section at ``loc`` (a ``Located``), reporting through ``ctx``."""
    from tradesignals_dagster.registry.context import Located, validate_model, value_at

    out: dict[str, StreamingModel] = {}
    value = None if loc is None else value_at(loc)
    if value is None:
        return out
    if not isinstance(value, dict):
        ctx.add(loc.doc, loc.path, "Models must be a mapping of model id to model")
        return out
    for key, raw in value.items():
        path = (*loc.path, key)
        report = ctx.reporter(loc.doc, path)
        reason = table_name_problem(str(key), "a model id")
        if reason is not None:
            report((), f"{reason} (it names the model's asset and artifact folder)")
            continue
        if not isinstance(raw, dict):
            report((), "a model must be a mapping")
            continue
        model = validate_model(StreamingModel, {**raw, "key": str(key)}, {}, {}, report)
        if model is not None:
            out[str(key)] = model
            ctx.places[f"model:{key}"] = Located(loc.doc, path)
    return out


def check_models(app: Any, places: dict[str, Any], add: Callable[..., None]) -> None:
    """Cross-check models against datasets, the feature catalogue, trainers and topics."""
    from tradesignals_dagster.ml.features import FEATURES
    from tradesignals_dagster.registry.datasets import table_columns
    from tradesignals_dagster.registry.normalise import suggest

    for key, model in app.models.items():
        place = places.get(f"model:{key}")

        def at(*sub: str | int, msg: str, place: Any = place) -> None:
            if place is None:
                add("registry", (), msg)
            else:
                add(place.doc, (*place.path, *sub), msg)

        if model.trainer not in TRAINERS:
            at("trainer", msg=f"unknown trainer '{model.trainer}' (trainers: {', '.join(TRAINERS)})")
        if model.signals_topic_id is not None and model.signals_topic_id not in app.topics:
            at(
                "signals_topic_id",
                msg=f"unknown topic '{model.signals_topic_id}'"
                f"{suggest(model.signals_topic_id, list(app.topics))}",
            )
        dataset = app.datasets.get(model.dataset_id)
        if dataset is None:
            declared = ", ".join(app.datasets) or "none declared"
            at(
                "dataset_id",
                msg=f"unknown dataset '{model.dataset_id}'{suggest(model.dataset_id, list(app.datasets))} "
                f"(datasets: {declared})",
            )
            continue
        if dataset.table_id not in app.tables or app.tables[dataset.table_id].topic_id not in app.schemas:
            continue  # the dataset's own check reports it
        columns = set(dataset.columns or table_columns(app, dataset.table_id))
        for i, name in enumerate(model.features):
            feature = FEATURES.get(name)
            if feature is None:
                at("features", i, msg=f"unknown feature '{name}' (features: {', '.join(FEATURES)})")
                continue
            missing = [c for c in feature.columns if c not in columns]
            if missing:
                at(
                    "features",
                    i,
                    msg=f"feature '{name}' needs column(s) {', '.join(missing)} that dataset "
                    f"'{dataset.key}' lacks",
                )
