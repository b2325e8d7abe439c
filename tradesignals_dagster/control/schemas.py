"""Schemas: register each topic's value schema under its subject, compatibility-checked first.

The check runs here, with the Avro specification's resolution rules, so the refusal names the
field that breaks consumers whatever registry is behind the URL; the subject's level is also
set on the registry so it enforces the same rule for producers that register on their own.
"""

from __future__ import annotations

from tradesignals_dagster.control.plan import Change, Notice, Plan
from tradesignals_dagster.kafka.compatibility import check_compatibility
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.registry.models import StreamingApplication


def plan_schemas(app: StreamingApplication, registry: SchemaRegistry, only: set[str] | None = None) -> Plan:
    """Compare each topic's schema with its subject; ``only`` limits it to those subjects."""
    plan = Plan()
    for tid, schema in sorted(app.schemas.items()):
        subject = app.subjects[tid]
        if only is not None and subject not in only:
            continue
        level = app.topic_compatibility(tid)
        live_level = registry.compatibility(subject)
        if live_level != level:
            plan.changes.append(
                Change(
                    "set_compatibility",
                    subject,
                    f"compatibility {live_level or 'global'} -> {level}",
                    {"level": level},
                )
            )
        versions = registry.versions(subject)
        if versions and versions[-1].schema == schema:
            continue
        older = [v for v in versions[:-1] if v.schema == schema]
        if older:
            plan.notices.append(
                Notice(
                    "schema_is_old_version",
                    subject,
                    f"the registry's schema is version {older[0].version}, but version "
                    f"{versions[-1].version} is the latest; registering it again does not make it "
                    "the latest: delete the newer versions or change the schema",
                )
            )
            continue
        problems = check_compatibility(
            schema,
            [v.schema for v in versions],
            level,
            existing_versions=[v.version for v in versions],
        )
        if problems:
            plan.notices.append(
                Notice(
                    "incompatible_schema",
                    subject,
                    f"the new schema breaks {level} compatibility: " + "; ".join(p.message for p in problems),
                    blocking=True,
                    data={
                        "fields": sorted({p.field for p in problems if p.field}),
                        "messages": [p.message for p in problems],
                    },
                )
            )
            continue
        next_version = versions[-1].version + 1 if versions else 1
        plan.changes.append(
            Change(
                "register_schema",
                subject,
                f"register version {next_version} ({schema.get('name')}, "
                f"{len(schema.get('fields', []))} fields)",
                {"schema": schema, "topic": tid},
            )
        )
    return plan


def apply_schema_change(registry: SchemaRegistry, change: Change) -> int | None:
    """Carry out one schema change; returns the schema id when one was registered."""
    if change.kind == "set_compatibility":
        registry.set_compatibility(change.target, change.data["level"])
        return None
    if change.kind == "register_schema":
        return registry.register(change.target, change.data["schema"])
    raise ValueError(change.kind)  # pragma: no cover
