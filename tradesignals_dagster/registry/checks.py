"""Cross-checks that the shape of each YAML object cannot express on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.normalise import suggest

Add = Callable[..., None]


def cross_check(app: StreamingApplication, places: dict[str, Any], add: Add, with_dirs: bool) -> None:
    """Report references to missing topics, impossible settings and cycles through ``add``."""

    def at(kind: str, key: str, *sub: str | int, severity: str = "error", msg: str) -> None:
        place = places.get(f"{kind}:{key}")
        if place is None:
            add("registry", (), msg, severity)
        else:
            add(place.doc, (*place.path, *sub), msg, severity)

    topic_ids = list(app.topics)
    for tid, topic in app.topics.items():
        if topic.min_insync_replicas > topic.replication_factor:
            at(
                "topic",
                tid,
                "min_insync_replicas",
                msg=f"min_insync_replicas ({topic.min_insync_replicas}) exceeds replication_factor "
                f"({topic.replication_factor}); producers with acks=all could never write",
            )
        if (
            topic.value_serializer == "avro"
            and tid not in app.schemas
            and topic.value_schema is None
            and topic.value_schema_id is None
        ):
            at(
                "topic",
                tid,
                msg="value_serializer is avro but the topic has no value_schema or value_schema_id",
            )

    subjects: dict[str, str] = {}
    for tid in sorted(app.subjects):
        subject = app.subjects[tid]
        if subject in subjects and app.schemas.get(subjects[subject]) != app.schemas.get(tid):
            at(
                "topic",
                tid,
                msg=f"subject '{subject}' is also used by topic '{subjects[subject]}' "
                "with a different schema; give each topic its own subject",
            )
        subjects.setdefault(subject, tid)

    groups: dict[str, str] = {}
    for key, pipe in app.pipelines.items():
        inp, out = pipe.input, pipe.output
        if inp.type == "kafka":
            if not inp.kafka_topic_id:
                at(
                    "pipeline",
                    key,
                    "input",
                    msg="a kafka input needs kafka_topic_id (the topic it reads)",
                )
            elif inp.kafka_topic_id not in app.topics:
                at(
                    "pipeline",
                    key,
                    "input",
                    "kafka_topic_id",
                    msg=f"unknown topic '{inp.kafka_topic_id}'{suggest(inp.kafka_topic_id, topic_ids)}",
                )
            group = pipe.consumer_group()
            if group in groups:
                at(
                    "pipeline",
                    key,
                    "input",
                    msg=f"consumer group '{group}' is also used by pipeline '{groups[group]}'; "
                    f"the two would split the partitions between them",
                )
            groups.setdefault(group, key)
        elif inp.type == "websocket" and not inp.url:
            at(
                "pipeline",
                key,
                "input",
                msg="a websocket input needs url (websocket is the default input type; "
                "set type: to kafka, replay or synthetic otherwise)",
            )
        elif inp.type == "replay" and not inp.path:
            at("pipeline", key, "input", msg="a replay input needs path (the file to replay)")
        elif inp.type == "custom" and not (inp.module_path and inp.class_name):
            at("pipeline", key, "input", msg="a custom input needs module_path and class_name")
        if inp.type != "kafka" and inp.kafka_topic_id:
            at(
                "pipeline",
                key,
                "input",
                "kafka_topic_id",
                severity="warning",
                msg=f"kafka_topic_id is ignored by a {inp.type} input",
            )
        if inp.module_path and inp.type != "custom":
            at(
                "pipeline",
                key,
                "input",
                "module_path",
                severity="warning",
                msg=f"module_path is only used by a custom input, not {inp.type}",
            )
        if not out.topic_id:
            at("pipeline", key, "output", msg="a kafka output needs topic_id (the topic it writes)")
        elif out.topic_id not in app.topics:
            at(
                "pipeline",
                key,
                "output",
                "topic_id",
                msg=f"unknown topic '{out.topic_id}'{suggest(out.topic_id, topic_ids)}",
            )
        if out.topic_id and inp.type == "kafka" and out.topic_id == inp.kafka_topic_id:
            at(
                "pipeline",
                key,
                "output",
                "topic_id",
                msg=f"the pipeline reads and writes the same topic '{out.topic_id}'",
            )

        _check_lineage(app, key, at)

    for cycle in _cycles(app):
        first = cycle[0]
        path = " -> ".join([*cycle, first])
        at("pipeline", first, msg=f"pipelines and topics form a cycle: {path}")


def _check_lineage(app: StreamingApplication, key: str, at: Callable[..., None]) -> None:
    """Column lineage must name fields that exist in the output and input schemas."""
    pipe = app.pipelines[key]
    if not pipe.column_lineage:
        return
    out_schema = app.schemas.get(pipe.output.topic_id or "")
    in_schema = app.schemas.get(pipe.input.kafka_topic_id or "")
    if out_schema is None or in_schema is None:
        at(
            "pipeline",
            key,
            "column_lineage",
            msg="column_lineage needs Avro schemas on both the input and the output topic",
        )
        return
    out_fields = [f["name"] for f in out_schema.get("fields", [])]
    in_fields = [f["name"] for f in in_schema.get("fields", [])]
    for out_field, sources in pipe.column_lineage.items():
        if out_field not in out_fields:
            at(
                "pipeline",
                key,
                "column_lineage",
                out_field,
                msg=f"'{out_field}' is not a field of {pipe.output.topic_id}{suggest(out_field, out_fields)}",
            )
        for src in sources:
            if src not in in_fields:
                at(
                    "pipeline",
                    key,
                    "column_lineage",
                    out_field,
                    msg=f"'{src}' is not a field of {pipe.input.kafka_topic_id}{suggest(src, in_fields)}",
                )


def _cycles(app: StreamingApplication) -> list[list[str]]:
    """Cycles among pipelines, through the topics they read and write (one per cycle)."""
    edges: dict[str, list[str]] = {}
    for key, pipe in app.pipelines.items():
        if pipe.output.topic_id and pipe.output.topic_id != pipe.input.kafka_topic_id:
            edges.setdefault(key, []).extend(app.readers_of(pipe.output.topic_id))
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []
    seen_sets: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                if frozenset(cycle) not in seen_sets:
                    seen_sets.add(frozenset(cycle))
                    found.append(cycle)
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found
