"""Asset keys by convention, so people and scripts can find them: ``schemas/<subject>``,
``kafka/<topic_id>``, ``pipelines/<pipeline_id>``, ``feeds/<pipeline_id>`` (external inputs)."""

from __future__ import annotations

import dagster as dg


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
    """The external feed (websocket, replay file, generator) a pipeline ingests."""
    return dg.AssetKey(["feeds", key])
