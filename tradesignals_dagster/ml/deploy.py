"""The promoted model version as part of a scoring pipeline's desired state.

A pipeline scores a model when it reads the topic of the model's dataset (through its table) and
writes the model's ``signals_topic_id``. Its desired state then carries the promoted version in
``TRADESIGNALS_MODEL_VERSION`` and in its config hash, so promoting a new version is a change the
redeploy sensor acts on, and every replica scores with the same, pinned version.
"""

from __future__ import annotations

import hashlib
import json
import logging

from tradesignals_dagster.datasets.errors import DatasetError
from tradesignals_dagster.ml.errors import ModelError
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.models_ml import StreamingModel
from tradesignals_dagster.settings import Settings

log = logging.getLogger(__name__)
VERSION_ENV = "TRADESIGNALS_MODEL_VERSION"


def scored_model(app: StreamingApplication, key: str) -> StreamingModel | None:
    """The model pipeline ``key`` scores, if any."""
    pipe = app.pipelines.get(key)
    if pipe is None or pipe.input.type != "kafka":
        return None
    for model in app.models.values():
        dataset = app.datasets.get(model.dataset_id)
        table = app.tables.get(dataset.table_id) if dataset else None
        if (
            model.signals_topic_id
            and model.signals_topic_id == pipe.output.topic_id
            and table is not None
            and table.topic_id == pipe.input.kafka_topic_id
        ):
            return model
    return None


def model_pin(app: StreamingApplication, key: str, settings: Settings) -> dict[str, str]:
    """``{TRADESIGNALS_MODEL_VERSION: <promoted version or "">}`` for a scoring pipeline, ``{}`` for
    any other or when the object store cannot be read now (the pipeline then loads the promoted
    version itself at start; the warning says why)."""
    model = scored_model(app, key)
    if model is None:
        return {}
    from tradesignals_dagster.datasets.store import object_store
    from tradesignals_dagster.ml.store import ModelStore

    try:
        version = ModelStore(object_store(settings), model.key).current()
    except (DatasetError, ModelError) as exc:
        log.warning("model %s: promoted version unknown (%s)", model.key, exc)
        return {}
    return {VERSION_ENV: version or ""}


def pinned_config_hash(base: str, pin: dict[str, str]) -> str:
    """``base`` unchanged without a pin, else a hash of both (a new version, a new hash)."""
    if not pin:
        return base
    return hashlib.sha256((base + json.dumps(pin, sort_keys=True)).encode()).hexdigest()
