"""The desired state of a pipeline: the command, its settings, and the hashes that say when to
redeploy (registry entry, config.yaml, schemas of its topics, pipeline code or image)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from tradesignals_dagster import __version__
from tradesignals_dagster.deploy.runtime import DesiredState
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings


def config_hash(app: StreamingApplication, key: str) -> str:
    """Hash of everything in the registry that configures pipeline ``key``."""
    pipe = app.pipelines[key]
    topics = [t for t in (pipe.input.kafka_topic_id, pipe.output.topic_id) if t]
    payload = {
        "pipeline": pipe.model_dump(mode="json"),
        "topics": {
            t: app.topics[t].model_dump(mode="json", exclude={"value_schema"})
            for t in topics
            if t in app.topics
        },
        "schemas": {t: app.schemas.get(t) for t in topics},
        "log_level": app.log_level,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def code_version(pipelines_dir: Path, key: str, image: str | None) -> str:
    """Hash of the pipeline's directory (app.py, Dockerfile...) and the package version, or the
    image reference when the pipeline runs from an image."""
    digest = hashlib.sha256(f"tradesignals-dagster {__version__}".encode())
    if image:
        digest.update(image.encode())
    folder = pipelines_dir / key
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.name != "config.yaml":
                digest.update(str(path.relative_to(folder)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def desired_state(app: StreamingApplication, key: str, settings: Settings) -> DesiredState:
    """What should run for pipeline ``key`` under ``settings`` (non-secret settings only); for the
    docker runtime, the container's desired state (:mod:`tradesignals_dagster.deploy.container`).
    ``key`` may also be a table sink's ``sink.<table>`` (:mod:`tradesignals_dagster.deploy.workloads`)."""
    from tradesignals_dagster.deploy.workloads import sink_desired_state, table_of

    if table_of(key) is not None:
        return sink_desired_state(app, str(table_of(key)), settings)
    if settings.runtime != "process":
        from tradesignals_dagster.deploy.operations import check_runtime

        if check_runtime(settings.runtime) == "docker":
            from tradesignals_dagster.deploy.container import container_desired_state

            return container_desired_state(app, key, settings)
    pipe = app.pipelines[key]
    pipelines_dir = settings.pipelines_dir
    app_py = pipelines_dir / key / "app.py"
    env = {
        "TRADESIGNALS_REGISTRY": str(settings.registry),
        "TRADESIGNALS_PIPELINES_DIR": str(pipelines_dir),
        "TRADESIGNALS_STATE_DIR": str(settings.state_dir),
        "TRADESIGNALS_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": settings.resolved_schema_registry_url(),
        "TRADESIGNALS_SECURITY_PROTOCOL": settings.security_protocol,
        "TRADESIGNALS_PIPELINE": key,
    }
    image = pipe.docker.image if pipe.docker else None
    from tradesignals_dagster.ml.deploy import model_pin, pinned_config_hash

    pin = model_pin(app, key, settings)  # a scoring pipeline's promoted model version
    env.update(pin)
    return DesiredState(
        key=key,
        command=(sys.executable, str(app_py)),
        env=env,
        config_hash=pinned_config_hash(config_hash(app, key), pin),
        code_version=code_version(pipelines_dir, key, image if settings.runtime == "docker" else None),
        image=image,
        workdir=str(pipelines_dir / key),
    )
