"""Facts about live topics, subjects and pipelines, for asset metadata, checks and the CLI."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.registry.models import StreamingApplication


def fingerprint(schema: dict[str, Any]) -> str:
    """A stable hash of an Avro schema (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def topic_facts(control: ControlPlane, topic: str) -> dict[str, Any]:
    """Partitions, replication, configs and message counts of a live topic."""
    live = control.admin.describe({topic}).get(topic)
    if live is None:
        return {"exists": False}
    ends = control.admin.end_offsets(topic, live.partitions)
    starts = control.admin.start_offsets(topic, live.partitions)
    managed = ("retention.ms", "retention.bytes", "cleanup.policy", "min.insync.replicas")
    return {
        "exists": True,
        "partitions": live.partitions,
        "replication_factor": live.replication_factor,
        "configs": {k: live.configs[k] for k in managed if k in live.configs},
        "end_offsets": ends,
        "messages_written": sum(ends.values()),
        "messages_retained": sum(max(0, ends[p] - starts.get(p, 0)) for p in ends),
    }


def schema_facts(control: ControlPlane, subject: str) -> dict[str, Any]:
    """The latest registered version of ``subject`` and its compatibility level."""
    latest = control.registry.latest(subject)
    if latest is None:
        return {"registered": False}
    return {
        "registered": True,
        "schema_id": latest.schema_id,
        "version": latest.version,
        "fingerprint": fingerprint(latest.schema),
        "compatibility": control.registry.compatibility(subject) or "global",
        "schema": latest.schema,
    }


def consumer_lag(control: ControlPlane, app: StreamingApplication, key: str) -> int | None:
    """Messages pipeline ``key`` has yet to process on its input topic (None: not a kafka input
    or the group never committed)."""
    pipe = app.pipelines[key]
    topic = pipe.input.kafka_topic_id
    if pipe.input.type != "kafka" or topic is None:
        return None
    live = control.admin.describe({topic}).get(topic)
    if live is None:
        return None
    return control.admin.group_lag(pipe.consumer_group(), topic, live.partitions)


def pipeline_metrics(state_dir: Path, key: str, timeout_s: float = 2.0) -> dict[str, float]:
    """The counters a running pipeline exposes on its metrics endpoint (records in/out, DLQ,
    lag...), by series name without the ``tradesignals_`` prefix; empty when it does not answer."""
    from tradesignals_dagster.streaming.metrics import metrics_port_file

    try:
        port = int(metrics_port_file(state_dir, key).read_text().strip())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tradesignals_") and "_bucket" not in line:
            name, _, value = line.partition("{")[0], None, line.rsplit(" ", 1)[-1]
            try:
                out[name.removeprefix("tradesignals_")] = float(value)
            except ValueError:
                continue
    return out
