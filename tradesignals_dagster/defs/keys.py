"""Asset keys and groups by convention, so people and scripts can find them.

Keys: ``schemas/<subject>``, ``kafka/<topic_id>``, ``pipelines/<pipeline_id>``,
``feeds/<pipeline_id>_feed`` (the external input of an ingest pipeline; ``_source`` instead when the
pipeline id already ends in ``_feed``), ``sinks/<table_id>_sink`` and ``clickhouse/<table_id>_table``.
The Dagster UI labels a node with the key's last component only, so the role is in the label
wherever ids are shared: a feed never reads the same as the pipeline it feeds, nor a table or its
sink as the topic they are filled from.

Groups are by role, in the order data flows: ``feeds`` -> ``pipelines`` -> ``topics`` (with
``schemas`` beside them) -> ``warehouse`` -> ``datasets`` -> ``models``. The last three belong to
the downstream assets (tables, exported datasets, trained models).
"""

from __future__ import annotations

import dagster as dg

FEEDS_GROUP = "feeds"
PIPELINES_GROUP = "pipelines"
TOPICS_GROUP = "topics"
SCHEMAS_GROUP = "schemas"
WAREHOUSE_GROUP = "warehouse"
DATASETS_GROUP = "datasets"
MODELS_GROUP = "models"

#: Every group, in the order the data flows through them (the README documents each).
GROUPS: tuple[str, ...] = (
    FEEDS_GROUP,
    PIPELINES_GROUP,
    SCHEMAS_GROUP,
    TOPICS_GROUP,
    WAREHOUSE_GROUP,
    DATASETS_GROUP,
    MODELS_GROUP,
)


def schema_key(subject: str) -> dg.AssetKey:
    """The asset of a schema registry subject."""
    return dg.AssetKey(["schemas", subject])


def topic_key(topic_id: str) -> dg.AssetKey:
    """The asset of a Kafka topic."""
    return dg.AssetKey(["kafka", topic_id])


def pipeline_key(key: str) -> dg.AssetKey:
    """The asset of a long-running pipeline."""
    return dg.AssetKey(["pipelines", key])


def feed_key(key: str) -> dg.AssetKey:
    """The external feed (websocket, replay file, generator) pipeline ``key`` ingests; labelled
    ``<key>_feed`` (``<key>_source`` for a ``..._feed`` pipeline) so the UI tells it from the
    pipeline."""
    suffix = "_source" if key.endswith("_feed") else "_feed"
    return dg.AssetKey(["feeds", f"{key}{suffix}"])


def sink_key(table_id: str) -> dg.AssetKey:
    """The asset of a table's continuous sink (between ``kafka/<topic>`` and the table), labelled
    ``<table>_sink``: a table is often named after its topic, and the UI shows only the label."""
    return dg.AssetKey(["sinks", f"{table_id}_sink"])


def table_key(table_id: str) -> dg.AssetKey:
    """The asset of a ClickHouse table of the registry's ``Tables``, labelled ``<table>_table`` so
    it never reads the same as the topic it is filled from."""
    return dg.AssetKey(["clickhouse", f"{table_id}_table"])


def workload_key(runtime_key: str) -> dg.AssetKey:
    """The asset that deploys a runtime workload: ``pipelines/<id>``, or ``sinks/<table>`` for a
    sink's ``sink.<table>`` (see :mod:`tradesignals_dagster.deploy.workloads`)."""
    from tradesignals_dagster.deploy.workloads import table_of

    table = table_of(runtime_key)
    return pipeline_key(runtime_key) if table is None else sink_key(table)
