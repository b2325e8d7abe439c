"""``models/<id>`` assets: models trained on the Parquet datasets, versioned, promoted on merit.

Each model of the registry is an asset downstream of ``datasets/<dataset_id>`` (and upstream of
its scoring pipeline), kind the trainer's (``scikit-learn``). A materialization trains on the
newest ``training_window_days`` exported days (:func:`tradesignals_dagster.ml.training.train`),
writes the versioned artifact and model card to the object store and records the card as
metadata beside the previous promoted version's metrics. The blocking asset check
``beats_baseline`` is reported by the same step: it passes only when the model beats the naive
baselines on the time-ordered hold-out, and only then is the version promoted (the ``current``
pointer the scoring pipeline's desired state follows). A failed run promotes nothing.

A daily schedule retrains 90 minutes after the dataset's export tick, when the new day is in.

No ``from __future__ import annotations``: Dagster reads the decorated functions' annotations.
"""

from typing import Any

import dagster as dg

from tradesignals_dagster.datasets.store import object_store
from tradesignals_dagster.defs.datasets import dataset_key
from tradesignals_dagster.defs.keys import MODELS_GROUP
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.ml.store import ModelStore
from tradesignals_dagster.ml.trainers import trainer_for
from tradesignals_dagster.ml.training import TrainingResult, train
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.models_ml import StreamingModel

CHECK = "beats_baseline"
RETRAIN_AFTER_EXPORT_MIN = 90


def model_key(model_id: str) -> dg.AssetKey:
    """The asset of a model."""
    return dg.AssetKey(["models", model_id])


def _metrics_table(card: dict[str, Any], previous: dict[str, Any] | None) -> str:
    m = card["metrics"]
    cols = [
        ("model", m["model"]),
        ("majority class", m["baseline_majority"]),
        ("same as last bar", m["baseline_last_direction"]),
    ]
    if previous and previous.get("metrics"):
        cols.append((f"previous {previous['version']}", previous["metrics"]["model"]))

    def cell(v: Any) -> str:
        return "-" if v is None else f"{v:.4f}"

    head = "| metric | " + " | ".join(n for n, _ in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    rows = [
        f"| {k} | " + " | ".join(cell(c.get(k)) for _, c in cols) + " |"
        for k in ("accuracy", "log_loss", "auc")
    ]
    return head + "\n".join(rows)


def _card_metadata(
    result: TrainingResult, promoted: bool, uri: str, previous: dict[str, Any] | None
) -> dict[str, Any]:
    card = result.card
    return {
        "version": card["version"],
        "promoted": promoted,
        "artifact": uri,
        "training_partitions": dg.MetadataValue.json([p["day"] for p in card["partitions"]]),
        "rows": card["rows"],
        "features": dg.MetadataValue.json(card["features"]),
        "params": dg.MetadataValue.json(card["params"]),
        "metrics": dg.MetadataValue.md(_metrics_table(card, previous)),
        "accuracy": card["metrics"]["model"]["accuracy"],
        "log_loss": card["metrics"]["model"]["log_loss"],
        "auc": card["metrics"]["model"]["auc"],
        "previous_version": previous["version"] if previous else None,
        "training_seconds": card["training_seconds"],
    }


def run_training(
    model: StreamingModel, settings: Any
) -> tuple[TrainingResult, bool, str, dict[str, Any] | None]:
    """Train ``model``, promote the version when it passed; the previous promoted card's summary."""
    store = object_store(settings)
    models = ModelStore(store, model.key)
    current = models.current()
    prev_card = models.card(current) if current else None
    previous = {"version": current, "metrics": prev_card.get("metrics")} if current and prev_card else None
    result = train(store, model, previous)
    if result.evaluation.passed:
        models.promote(result.version)
    return result, result.evaluation.passed, models.uri(result.version), previous


def model_asset(app: StreamingApplication, model: StreamingModel) -> dg.AssetsDefinition:
    """The asset of one model, with its blocking ``beats_baseline`` check."""
    model_id = model.key
    key = model_key(model_id)

    @dg.asset(
        key=key,
        group_name=MODELS_GROUP,
        deps=[dataset_key(model.dataset_id)],
        kinds={trainer_for(model.trainer).kind},
        description=model.doc or f"Model trained on dataset {model.dataset_id}.",
        metadata={
            "dataset": model.dataset_id,
            "target": model.target,
            "features": dg.MetadataValue.json(model.features),
            "training_window_days": model.training_window_days,
            "signals_topic": model.signals_topic_id or "",
        },
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=key,
                blocking=True,
                description="The model beats the majority-class and same-direction-as-last-bar "
                "baselines on the time-ordered hold-out; only then is it promoted.",
            )
        ],
    )
    def _asset(context: dg.AssetExecutionContext, tradesignals: TradesignalsResource) -> dg.MaterializeResult:
        current = tradesignals.app().models[model_id]
        result, promoted, uri, previous = run_training(current, tradesignals.settings())
        context.log.info(
            f"model {model_id} version {result.version}: {result.evaluation.reason}; "
            f"{'promoted' if promoted else 'not promoted'}"
        )
        return dg.MaterializeResult(
            metadata=_card_metadata(result, promoted, uri, previous),
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECK,
                    passed=result.evaluation.passed,
                    description=result.evaluation.reason,
                    metadata={"metrics": dg.MetadataValue.json(result.card["metrics"])},
                )
            ],
        )

    return _asset


def model_schedule(
    app: StreamingApplication, model: StreamingModel, asset: dg.AssetsDefinition
) -> dg.ScheduleDefinition:
    """Daily, :data:`RETRAIN_AFTER_EXPORT_MIN` minutes after the dataset's export tick."""
    dataset = app.datasets[model.dataset_id]
    minutes = (dataset.delay_minutes + RETRAIN_AFTER_EXPORT_MIN) % (24 * 60)
    job = dg.define_asset_job(name=f"train_{model.key}", selection=dg.AssetSelection.assets(asset))
    return dg.ScheduleDefinition(
        name=f"train_{model.key}_daily",
        cron_schedule=f"{minutes % 60} {minutes // 60} * * *",
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Retrains {model.key} daily once the dataset's new day is exported.",
    )


def build_models(app: StreamingApplication) -> dict[str, list[Any]]:
    """Assets and schedules of every model (``Definitions`` keyword lists)."""
    out: dict[str, list[Any]] = {"assets": [], "schedules": []}
    for model_id in sorted(app.models):
        model = app.models[model_id]
        if model.dataset_id not in app.datasets:
            continue
        asset = model_asset(app, model)
        out["assets"].append(asset)
        out["schedules"].append(model_schedule(app, model, asset))
    return out
