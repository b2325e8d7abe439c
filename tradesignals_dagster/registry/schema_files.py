"""Value schemas: inline, in the ``Schemas`` section, or files under ``schemas/`` (``.avsc`` in
Avro JSON, ``.yaml`` in the registry's notation), translated to Avro and checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from tradesignals_dagster.registry import avro
from tradesignals_dagster.registry.context import LoadContext, Located, kind_of, validate_model, value_at
from tradesignals_dagster.registry.files import confined_reference
from tradesignals_dagster.registry.identifiers import topic_name_problem
from tradesignals_dagster.registry.models import StreamingTopic, ValueSchema
from tradesignals_dagster.registry.normalise import suggest
from tradesignals_dagster.registry.yamlsource import PathKey, YamlDoc, format_path, read_yaml

SCHEMA_SUFFIXES = (".avsc", ".json", ".yaml", ".yml")


def schema_section(
    loc: Located | None, root: YamlDoc, base_dir: Path, ctx: LoadContext
) -> dict[str, Located]:
    out: dict[str, Located] = {}
    if loc is None:
        return out
    value = value_at(loc)
    if not isinstance(value, dict):
        ctx.add(
            loc.doc,
            loc.path,
            f"Schemas must be a mapping of schema id to schema, got {kind_of(value)}",
        )
        return out
    for sid, raw in value.items():
        if isinstance(raw, str):
            refused = confined_reference(raw)
            if refused is not None:
                ctx.add(loc.doc, (*loc.path, sid), f"schema file {refused}")
                continue
            doc = read_yaml(base_dir / raw, ctx.problems, base_dir)
            if doc is not None:
                out[str(sid)] = Located(doc, ())
        else:
            out[str(sid)] = Located(loc.doc, (*loc.path, sid))
    return out


def resolve_schema(
    tid: str, topic: StreamingTopic, defs: dict[str, Located], base_dir: Path, ctx: LoadContext
) -> tuple[dict[str, Any], str | None] | None:
    place = ctx.places[f"topic:{tid}"]
    report = ctx.reporter(place.doc, place.path)
    if topic.value_schema is not None and topic.value_schema_id is not None:
        report(("value_schema_id",), "give value_schema or value_schema_id, not both")
        return None
    if topic.value_schema is not None:
        avro_json = avro.to_avro(topic.value_schema, ctx.reporter(place.doc, (*place.path, "value_schema")))
        return _final(avro_json, place.doc, (*place.path, "value_schema"), ctx), topic.value_schema.subject
    if topic.value_schema_id is None:
        return None
    sid = topic.value_schema_id
    loc = defs.get(sid) or _schema_file(sid, base_dir, ctx)
    if loc is False:
        return None  # the file exists but cannot be read; reported as file: reason
    if loc is None:
        report(
            ("value_schema_id",),
            f"schema '{sid}' is not in the Schemas section nor at schemas/{sid}.avsc or .yaml"
            + suggest(sid, list(defs)),
        )
        return None
    key = f"schema:{sid}"
    raw = value_at(loc)
    if not isinstance(raw, dict):
        ctx.add(loc.doc, loc.path, f"a schema must be a mapping, got {kind_of(raw)}")
        return None
    if loc.doc.file.endswith((".avsc", ".json")):
        subject = None
        return _final(raw, loc.doc, loc.path, ctx), subject
    schema = validate_model(ValueSchema, raw, {}, {}, ctx.reporter(loc.doc, loc.path))
    if schema is None:
        return None
    reporter = ctx.reporter(loc.doc, loc.path) if key not in ctx.places else (lambda *a, **k: None)
    ctx.places.setdefault(key, loc)
    return _final(avro.to_avro(schema, reporter), loc.doc, loc.path, ctx), schema.subject


def _schema_file(sid: str, base_dir: Path, ctx: LoadContext) -> Located | Literal[False] | None:
    """The schema file for ``sid``; ``None`` when there is none, ``False`` when it cannot be read."""
    if topic_name_problem(sid) is not None:
        return None  # the id itself is reported by the model; it must never become a path
    for suffix in SCHEMA_SUFFIXES:
        path = base_dir / "schemas" / f"{sid}{suffix}"
        if os.path.lexists(path):
            doc = read_yaml(path, ctx.problems, base_dir)
            return Located(doc, ()) if doc is not None else False
    return None


def _final(avro_json: dict[str, Any], doc: YamlDoc, path: PathKey, ctx: LoadContext) -> dict[str, Any]:
    prefix = format_path(path)
    if any(p.file == doc.file and p.severity == "error" and p.path.startswith(prefix) for p in ctx.problems):
        return avro_json  # already explained field by field; fastavro would repeat the first
    reason = avro.check_parses(avro_json)
    if reason is not None:
        ctx.add(doc, path, f"not a valid Avro schema: {reason}")
    return avro_json
