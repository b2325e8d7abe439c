"""The desired state of a pipeline that runs as containers: *what* runs, with no host paths.

A container's desired state names an image (tagged by content, see
:mod:`tradesignals_dagster.deploy.images`), the command inside it, its environment, resources and
replica count. Paths in it are fixed container paths:

* ``/app/pipelines/<id>/`` - the pipeline's code, baked into its image;
* ``/etc/tradesignals/registry`` and ``/etc/tradesignals/pipelines`` - the registry and the
  pipelines directory (``config.yaml``), **mounted read-only** by the runtime. Configuration is
  mounted rather than baked so a config change restarts a container without an image build; the
  host directories are the runtime's business (:class:`~tradesignals_dagster.deploy.docker.DockerRuntime`),
  not part of what should run;
* ``/tmp/tradesignals`` - state (metrics port file) on a tmpfs; the root file system is read-only.

The version is the registry/config hash and the image tag, so either change redeploys.
"""

from __future__ import annotations

import logging

from tradesignals_dagster.deploy.desired import config_hash
from tradesignals_dagster.deploy.images import pipeline_image_ref
from tradesignals_dagster.deploy.runtime import DesiredState
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

log = logging.getLogger(__name__)
CONTAINER_REGISTRY = "/etc/tradesignals/registry"
CONTAINER_PIPELINES = "/etc/tradesignals/pipelines"
CONTAINER_STATE = "/tmp/tradesignals"
CONTAINER_APP_ROOT = "/app/pipelines"
CONTAINER_PYTHON = "/opt/tradesignals/bin/python"


def container_env(settings: Settings, key: str) -> dict[str, str]:
    """The non-secret environment of pipeline ``key``'s containers (container paths only)."""
    return {
        "TRADESIGNALS_REGISTRY": CONTAINER_REGISTRY,
        "TRADESIGNALS_PIPELINES_DIR": CONTAINER_PIPELINES,
        "TRADESIGNALS_STATE_DIR": CONTAINER_STATE,
        "TRADESIGNALS_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": settings.resolved_schema_registry_url(),
        "TRADESIGNALS_SECURITY_PROTOCOL": settings.security_protocol,
        "TRADESIGNALS_PIPELINE": key,
    }


def object_store_env(settings: Settings) -> dict[str, str]:
    """Where a model-reading container finds the object store: an ``s3://`` store's URL, endpoint
    and region (its credentials are secrets, added by the runtime). A ``file://`` store is on the
    host, which a container cannot read: nothing, and the pipeline publishes nothing until it runs
    where the store is (a warning says so at deploy)."""
    from tradesignals_dagster.datasets.store import object_store

    store = object_store(settings)
    if store.kind != "s3":
        log.warning(
            "the object store %s is a host directory: a container cannot read models from it; set "
            "TRADESIGNALS_OBJECT_STORE_URL to s3://bucket/prefix (or run `tradesignals stack up`)",
            store.url,
        )
        return {}
    env = {"TRADESIGNALS_OBJECT_STORE_URL": store.url}
    if store.endpoint:
        env["TRADESIGNALS_OBJECT_STORE_ENDPOINT"] = store.endpoint
    if settings.object_store_region:
        env["TRADESIGNALS_OBJECT_STORE_REGION"] = settings.object_store_region
    return env


def container_limits(app: StreamingApplication, key: str) -> dict[str, str]:
    """``cpus`` and ``memory`` from the registry's ``docker:`` section, where set."""
    docker = app.pipelines[key].docker
    limits: dict[str, str] = {}
    if docker is not None and docker.cpus is not None:
        limits["cpus"] = f"{docker.cpus:g}"
    if docker is not None and docker.memory:
        limits["memory"] = docker.memory.lower()
    return limits


def container_desired_state(app: StreamingApplication, key: str, settings: Settings) -> DesiredState:
    """What should run for pipeline ``key`` as containers (image by content tag, no host paths)."""
    image = pipeline_image_ref(app, key, settings)
    docker = app.pipelines[key].docker
    from tradesignals_dagster.ml.deploy import model_pin, pinned_config_hash, scored_model

    pin = model_pin(app, key, settings)  # a scoring pipeline's promoted model version
    store = object_store_env(settings) if scored_model(app, key) is not None else {}
    return DesiredState(
        key=key,
        command=(CONTAINER_PYTHON, f"{CONTAINER_APP_ROOT}/{key}/app.py"),
        env={**container_env(settings, key), **store, **pin},
        config_hash=pinned_config_hash(config_hash(app, key), pin),
        code_version=image.rsplit(":", 1)[1],
        image=image,
        workdir=f"{CONTAINER_APP_ROOT}/{key}",
        replicas=docker.replicas if docker else 1,
        limits=container_limits(app, key),
    )
