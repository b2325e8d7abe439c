"""Asset factories: one asset per schema subject, Kafka topic and pipeline of the registry.

The graph reads as data flows: feed -> ingest pipeline -> topic -> pipeline -> topic, with each
topic also depending on its schema. Assets are grouped by role (``feeds``, ``pipelines``,
``schemas``, ``topics``; see :mod:`tradesignals_dagster.defs.keys`) and tagged with the
application id, so the lineage view shows one box per role and the catalog filters by app.

Materializing an asset makes that part of the world match the registry, through the same
control-plane and deploy functions the CLI uses. The registry is re-read at materialization, so a
run always applies what is on disk now.
"""

import re
from typing import Any

import dagster as dg

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.control.inspect import fingerprint, schema_facts, topic_facts
from tradesignals_dagster.control.plan import Plan
from tradesignals_dagster.defs.keys import (
    FEEDS_GROUP,
    PIPELINES_GROUP,
    SCHEMAS_GROUP,
    TOPICS_GROUP,
    feed_key,
    pipeline_key,
    schema_key,
    topic_key,
)
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.deploy.operations import deploy_pipeline
from tradesignals_dagster.deploy.runtime import RuntimeStatus
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.redact import redact_url
from tradesignals_dagster.registry.models import StreamingApplication

APP_TAG = "tradesignals/app"


def _failure(exc: TradesignalsError) -> dg.Failure:
    return dg.Failure(description=str(exc))


def _tags(app: StreamingApplication, kind: str) -> dict[str, str]:
    """Tags on every asset: its role, and the application it belongs to (groups are by role).
    Dagster allows tag values of up to 63 letters, digits, '_', '-', '.'; the id is fitted to that."""
    return {"tradesignals/kind": kind, APP_TAG: re.sub(r"[^A-Za-z0-9_.-]", "_", app.id)[:63] or "_"}


def apply_scope(
    context: dg.AssetExecutionContext,
    tradesignals: TradesignalsResource,
    topics: set[str] | None = None,
    subjects: set[str] | None = None,
) -> tuple[ControlPlane, Plan]:
    """Plan and apply the registry for these topics/subjects, logging what changed; a refusal
    (e.g. an incompatible schema) fails the step with the reason."""
    try:
        control = tradesignals.control()
        plan = control.plan(tradesignals.app(), topics=topics, subjects=subjects)
        control.apply(plan)
    except TradesignalsError as exc:
        raise _failure(exc) from exc
    for change in plan.changes:
        context.log.info(f"{change.target}: {change.summary}")
    for notice in plan.notices:
        context.log.warning(f"{notice.target}: {notice.summary}")
    return control, plan


def table_schema(avro: dict[str, Any]) -> dg.TableSchema:
    """An Avro record as a Dagster table schema (name, Avro type, doc)."""
    columns = []
    for f in avro.get("fields", []):
        t = f["type"]
        if isinstance(t, dict):
            name = t.get("logicalType") or t.get("type")
            if t.get("logicalType") == "decimal":
                name = f"decimal({t.get('precision')},{t.get('scale', 0)})"
        elif isinstance(t, list):
            name = " | ".join(x if isinstance(x, str) else str(x.get("type")) for x in t)
        else:
            name = str(t)
        columns.append(dg.TableColumn(f["name"], str(name), description=f.get("doc")))
    return dg.TableSchema(columns=columns)


def column_lineage(app: StreamingApplication, topic_id: str) -> dg.TableColumnLineage | None:
    """Field-level lineage of a topic from the ``column_lineage`` its writers declare."""
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for key in app.writers_of(topic_id):
        pipe = app.pipelines[key]
        source = pipe.input.kafka_topic_id
        if not source:
            continue
        for out_field, in_fields in pipe.column_lineage.items():
            deps.setdefault(out_field, []).extend(
                dg.TableColumnDep(asset_key=topic_key(source), column_name=f) for f in in_fields
            )
    return dg.TableColumnLineage(deps_by_column=deps) if deps else None


def _schema_asset(app: StreamingApplication, topic_id: str) -> dg.AssetsDefinition:
    subject = app.subjects[topic_id]
    schema = app.schemas[topic_id]

    @dg.asset(
        key=schema_key(subject),
        group_name=SCHEMAS_GROUP,
        kinds={"avro"},
        description=schema.get("doc") or f"Avro value schema of topic {topic_id}",
        metadata={"dagster/column_schema": table_schema(schema), "subject": subject},
        tags=_tags(app, "schema"),
    )
    def _schema(
        context: dg.AssetExecutionContext, tradesignals: TradesignalsResource
    ) -> dg.MaterializeResult:
        control, plan = apply_scope(context, tradesignals, subjects={subject})
        try:
            facts = schema_facts(control, subject)
        except TradesignalsError as exc:
            raise _failure(exc) from exc
        return dg.MaterializeResult(
            metadata={
                "schema_id": facts["schema_id"],
                "version": facts["version"],
                "fingerprint": facts["fingerprint"],
                "compatibility": facts["compatibility"],
                "changes": [c.summary for c in plan.changes],
                "dagster/column_schema": table_schema(facts["schema"]),
            },
            data_version=dg.DataVersion(facts["fingerprint"][:16]),
        )

    return _schema


def _topic_asset(app: StreamingApplication, topic_id: str) -> dg.AssetsDefinition:
    topic = app.topics[topic_id]
    deps = [pipeline_key(k) for k in app.writers_of(topic_id)]
    if topic_id in app.subjects:
        deps.insert(0, schema_key(app.subjects[topic_id]))
    metadata: dict[str, Any] = {"num_partitions": topic.num_partitions}
    if topic_id in app.schemas:
        metadata["dagster/column_schema"] = table_schema(app.schemas[topic_id])
    lineage = column_lineage(app, topic_id)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage

    @dg.asset(
        key=topic_key(topic_id),
        group_name=TOPICS_GROUP,
        deps=deps,
        kinds={"kafka"},
        description=topic.doc or (app.schemas.get(topic_id) or {}).get("doc") or f"Kafka topic {topic_id}",
        metadata=metadata,
        tags=_tags(app, "topic"),
    )
    def _topic(context: dg.AssetExecutionContext, tradesignals: TradesignalsResource) -> dg.MaterializeResult:
        control, plan = apply_scope(context, tradesignals, topics={topic_id})
        try:
            facts = topic_facts(control, topic_id)
        except TradesignalsError as exc:
            raise _failure(exc) from exc
        return dg.MaterializeResult(
            metadata={
                "partitions": facts["partitions"],
                "replication_factor": facts["replication_factor"],
                "configs": facts["configs"],
                "messages_written": facts["messages_written"],
                "messages_retained": facts["messages_retained"],
                "changes": [c.summary for c in plan.changes],
                "notices": [n.summary for n in plan.notices],
            }
        )

    return _topic


def container_metadata(status: RuntimeStatus) -> dict[str, Any]:
    """Image, image digest (content tag), container ids and replicas of a pipeline run by the
    docker runtime; nothing for processes. Never a secret: these come from container labels."""
    if status.runtime != "docker":
        return {}
    image = status.extra.get("image", "")
    return {
        "image": image,
        "image_digest": image.rsplit(":", 1)[-1] if ":" in image else "",
        "container_id": status.runtime_id or "",
        "containers": status.extra.get("containers", ""),
        "replicas": status.extra.get("replicas", ""),
    }


def _pipeline_asset(app: StreamingApplication, key: str) -> dg.AssetsDefinition:
    pipe = app.pipelines[key]
    if pipe.input.type == "kafka" and pipe.input.kafka_topic_id:
        deps = [topic_key(pipe.input.kafka_topic_id)]
    else:
        deps = [feed_key(key)]
    from tradesignals_dagster.ml.deploy import scored_model

    if (model := scored_model(app, key)) is not None:  # a scoring pipeline runs the promoted model
        deps.append(dg.AssetKey(["models", model.key]))
    kinds = {"python", "docker"} if pipe.docker else {"python"}

    @dg.asset(
        key=pipeline_key(key),
        group_name=PIPELINES_GROUP,
        deps=deps,
        kinds=kinds,
        owners=list(pipe.owners),
        description=pipe.doc or f"Long-running pipeline {pipe.name or key}",
        metadata={"input": pipe.input.type, "delivery": pipe.delivery, "name": pipe.name or key},
        tags=_tags(app, "pipeline"),
    )
    def _pipeline(
        context: dg.AssetExecutionContext, tradesignals: TradesignalsResource
    ) -> dg.MaterializeResult:
        force = context.run.tags.get("tradesignals/force") == "true"
        try:
            desired, status = deploy_pipeline(
                tradesignals.app(),
                key,
                tradesignals.settings(),
                tradesignals.control(),
                tradesignals.runtime(),
                force=force,
            )
        except TradesignalsError as exc:
            raise _failure(exc) from exc
        context.log.info(
            f"{key}: {status.state} ({status.runtime} {status.runtime_id}) version {desired.version}"
        )
        return dg.MaterializeResult(
            metadata={
                "runtime": status.runtime,
                "runtime_id": status.runtime_id or "",
                "state": status.state,
                "config_hash": desired.config_hash,
                "code_version": desired.code_version,
                "version": desired.version,
                "started_at": dg.MetadataValue.timestamp(status.started_at) if status.started_at else "",
                "restarts": status.restarts,
                **container_metadata(status),
            },
            data_version=dg.DataVersion(desired.version),
        )

    return _pipeline


def _feed_spec(app: StreamingApplication, key: str) -> dg.AssetSpec:
    pipe = app.pipelines[key]
    url = redact_url(pipe.input.url) if pipe.input.url else None  # metadata is shown in the UI
    where = url or pipe.input.path or pipe.input.module_path or pipe.input.type
    return dg.AssetSpec(
        key=feed_key(key),
        group_name=FEEDS_GROUP,
        kinds={"source"},
        description=f"External {pipe.input.type} feed of pipeline {key}: {where}",
        metadata={"type": pipe.input.type, "source": str(where), "pipeline": key},
        tags=_tags(app, "feed"),
    )


def build_assets(app: StreamingApplication) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every asset the registry implies, keyed by convention and grouped by role."""
    out: list[dg.AssetsDefinition | dg.AssetSpec] = []
    out += [_schema_asset(app, t) for t in sorted(app.schemas)]
    out += [_topic_asset(app, t) for t in sorted(app.topics)]
    for key in sorted(app.pipelines):
        out.append(_pipeline_asset(app, key))
        if not (app.pipelines[key].input.type == "kafka" and app.pipelines[key].input.kafka_topic_id):
            out.append(_feed_spec(app, key))
    return out


__all__ = ["build_assets", "fingerprint", "table_schema"]
