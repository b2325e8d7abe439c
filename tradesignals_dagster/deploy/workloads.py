"""Workloads: everything the deploy runtime supervises - pipelines and table sinks - under one key
space, so the runtime, ``tradesignals pipelines``, the health and redeploy sensors all cover both
through one code path.

A pipeline's runtime key is its id. A table's sink runs under the key ``sink.<table>``: a '.'
cannot occur in a pipeline id, so the two never clash, and the key is a valid directory name
(``<state_dir>/pipelines/sink.<table>/`` holds its state, log and metrics port like a pipeline's)
and container name. What differs between the two kinds is only *what* runs (the desired state:
``app.py`` of the pipeline, or ``python -m tradesignals_dagster.warehouse.sink --table <id>``)
and what must exist first (topics and schemas; for a sink also its table and dead-letter topic).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tradesignals_dagster import __version__
from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.deploy.runtime import DesiredState, PipelineRuntime, RuntimeStatus
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

SINK_PREFIX = "sink."
SINK_MODULE = "tradesignals_dagster.warehouse.sink"
_SINK_SOURCES = ("sink.py", "inserter.py", "frames.py", "client.py")
"""The files whose change must restart a sink (its code version)."""


def sink_runtime_key(table_id: str) -> str:
    """The runtime key of table ``table_id``'s sink."""
    return f"{SINK_PREFIX}{table_id}"


def table_of(key: str) -> str | None:
    """The table id when ``key`` is a sink's runtime key, else ``None`` (a pipeline)."""
    return key[len(SINK_PREFIX) :] if key.startswith(SINK_PREFIX) else None


def workload_keys(app: StreamingApplication) -> list[str]:
    """Every workload the registry asks for: pipelines by id, then sinks by table."""
    return sorted(app.pipelines) + [sink_runtime_key(t) for t in sorted(app.tables)]


def is_known(app: StreamingApplication, key: str) -> bool:
    """Whether ``key`` is a pipeline or a sink of a table in the registry."""
    table = table_of(key)
    return key in app.pipelines if table is None else table in app.tables


def sink_config_hash(app: StreamingApplication, table_id: str) -> str:
    """Hash of everything in the registry that configures the sink of ``table_id``: the table
    entry, its topic and the topic's schema."""
    table = app.tables[table_id]
    topic = app.topics.get(table.topic_id)
    payload = {
        "table": table.model_dump(mode="json"),
        "topic": topic.model_dump(mode="json", exclude={"value_schema"}) if topic else None,
        "schema": app.schemas.get(table.topic_id),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def sink_code_version() -> str:
    """Hash of the package version and the sink's source files."""
    digest = hashlib.sha256(f"tradesignals-dagster {__version__}".encode())
    folder = Path(__file__).resolve().parent.parent / "warehouse"
    for name in _SINK_SOURCES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _clickhouse_env(settings: Settings) -> dict[str, str]:
    """The ClickHouse URL and user, unless the URL carries credentials (then the sink reads it
    from the environment it inherits, and it never lands in state files)."""
    url = settings.resolved_clickhouse_url()
    env = {"TRADESIGNALS_CLICKHOUSE_USER": settings.clickhouse_user}
    if not (urlsplit(url).username or urlsplit(url).password):
        env["TRADESIGNALS_CLICKHOUSE_URL"] = url
    return env


def sink_desired_state(app: StreamingApplication, table_id: str, settings: Settings) -> DesiredState:
    """What should run for the sink of ``table_id``: a process, or a container of the runtime
    image (which holds the package) under the docker runtime."""
    key = sink_runtime_key(table_id)
    args = ("-m", SINK_MODULE, "--table", table_id)
    if settings.runtime == "docker":
        from tradesignals_dagster.deploy.container import CONTAINER_PYTHON, container_env
        from tradesignals_dagster.deploy.images import runtime_image_ref

        image = runtime_image_ref(settings.base_image)
        return DesiredState(
            key=key,
            command=(CONTAINER_PYTHON, *args),
            env={**container_env(settings, key), **_clickhouse_env(settings)},
            config_hash=sink_config_hash(app, table_id),
            code_version=image.rsplit(":", 1)[1],
            image=image,
        )
    checked = settings.pipelines_to_check()  # the registry loads as here: with it, or without one
    env = {
        "TRADESIGNALS_REGISTRY": str(settings.registry),
        **({"TRADESIGNALS_PIPELINES_DIR": str(checked)} if checked is not None else {}),
        "TRADESIGNALS_STATE_DIR": str(settings.state_dir),
        "TRADESIGNALS_BOOTSTRAP_SERVERS": settings.resolved_bootstrap_servers(),
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": settings.resolved_schema_registry_url(),
        "TRADESIGNALS_SECURITY_PROTOCOL": settings.security_protocol,
        **_clickhouse_env(settings),
    }
    return DesiredState(
        key=key,
        command=(sys.executable, *args),
        env=env,
        config_hash=sink_config_hash(app, table_id),
        code_version=sink_code_version(),
    )


def workload_topics(app: StreamingApplication, key: str) -> set[str]:
    """The topics workload ``key`` reads or writes (what its health depends on in Kafka)."""
    table_id = table_of(key)
    if table_id is not None:
        table = app.tables[table_id]
        return {table.topic_id, table.dlq_topic()}
    pipe = app.pipelines[key]
    topics = {pipe.output.topic_id} if pipe.output.topic_id else set()
    if pipe.input.type == "kafka" and pipe.input.kafka_topic_id:
        topics.add(pipe.input.kafka_topic_id)
    return topics


def workload_lag(control: ControlPlane, app: StreamingApplication, key: str) -> int | None:
    """Messages workload ``key`` has yet to process (its consumer group's lag); None when it has
    no Kafka input or never committed."""
    from tradesignals_dagster.control.inspect import consumer_lag

    table_id = table_of(key)
    if table_id is None:
        return consumer_lag(control, app, key)
    table = app.tables[table_id]
    live = control.admin.describe({table.topic_id}).get(table.topic_id)
    if live is None:
        return None
    lag: int | None = control.admin.group_lag(table.consumer_group(), table.topic_id, live.partitions)
    return lag


def prepare_sink(app: StreamingApplication, table_id: str, control: ControlPlane) -> None:
    """Create or fix the sink's topic, dead-letter topic, schema and table (idempotent); a table
    change that needs a rewrite refuses the deploy."""
    table = app.tables[table_id]
    topics = {table.topic_id, table.dlq_topic()}
    subjects = {app.subjects[table.topic_id]} if table.topic_id in app.subjects else set()
    control.apply(control.plan(app, topics=topics, subjects=subjects, tables={table_id}))


def deploy_workload(
    app: StreamingApplication,
    key: str,
    settings: Settings,
    control: ControlPlane,
    runtime: PipelineRuntime,
    force: bool = False,
) -> tuple[DesiredState, RuntimeStatus]:
    """Make workload ``key`` (a pipeline id or ``sink.<table>``) run as the registry says."""
    from tradesignals_dagster.deploy.desired import desired_state
    from tradesignals_dagster.deploy.operations import deploy_pipeline

    table_id = table_of(key)
    if table_id is None:
        return deploy_pipeline(app, key, settings, control, runtime, force=force)
    prepare_sink(app, table_id, control)
    desired = desired_state(app, key, settings)
    return desired, runtime.deploy(desired, force=force)
