"""Load a registry directory into a :class:`StreamingApplication`, collecting every problem.

The layout is the seed's: ``pipelines.yaml`` with ``StreamingApplication`` / ``Topics`` /
``Pipelines`` (at the root or nested under ``StreamingApplication``), ``Topics`` inline or as a
reference to ``topics.yaml``, schemas inline (``value_schema``), in a ``Schemas`` section, or as
files under ``schemas/`` (``<id>.avsc`` in Avro JSON, ``<id>.yaml`` in the registry's notation),
and per-pipeline ``pipelines/<id>/config.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tradesignals_dagster.registry.checks import cross_check
from tradesignals_dagster.registry.context import LoadContext, Located, kind_of, validate_model, value_at
from tradesignals_dagster.registry.custom_code import check_custom_code
from tradesignals_dagster.registry.datasets import check_datasets, load_datasets
from tradesignals_dagster.registry.errors import Problem, RegistryError, display_path
from tradesignals_dagster.registry.files import confined_reference
from tradesignals_dagster.registry.identifiers import safe_id_problem
from tradesignals_dagster.registry.models import (
    StreamingApplication,
    StreamingPipeline,
    StreamingTopic,
)
from tradesignals_dagster.registry.models_ml import check_models, load_models
from tradesignals_dagster.registry.normalise import (
    INPUT_ALIASES,
    OUTPUT_ALIASES,
    PIPELINE_ALIASES,
    TOPIC_ALIASES,
    normalise,
    suggest,
    translate,
)
from tradesignals_dagster.registry.overlays import apply_overlay
from tradesignals_dagster.registry.schema_files import resolve_schema, schema_section
from tradesignals_dagster.registry.tables import check_tables, load_tables
from tradesignals_dagster.registry.yamlsource import PathKey, YamlDoc, read_yaml

ROOT_FILES = ("pipelines.yaml", "pipelines.yml", "pipeline.yaml")
SECTIONS = ("Topics", "Pipelines", "Schemas", "Tables", "Datasets", "Models")
HEADER_KEYS = ("id", "environment", "log_level", "reset_topics_on_start")


@dataclass
class LoadResult:
    """The application (``None`` when errors prevent building it) and every problem found."""

    app: StreamingApplication | None
    problems: list[Problem]
    root_file: str = ""
    places: dict[str, Located] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the registry unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that are legal but suspicious."""
        return [p for p in self.problems if p.severity == "warning"]

    def require(self) -> StreamingApplication:
        """The application, or a :class:`RegistryError` listing every error."""
        if self.app is None or self.errors:
            raise RegistryError(self.problems)
        return self.app


def load_registry(
    registry: Path | str, pipelines_dir: Path | str | None = None, env: str | None = None
) -> LoadResult:
    """Read and check the registry at ``registry`` (a directory or its ``pipelines.yaml``).

    ``pipelines_dir`` adds the per-pipeline checks and ``config.yaml`` files; ``env`` applies
    ``environments/<env>.yaml`` (default: the registry's own ``environment``). Never raises for
    bad input: every problem is in the result; call :meth:`LoadResult.require` to insist.
    """
    ctx = LoadContext()
    registry = Path(registry)
    root_path = _find_root(registry, ctx)
    if root_path is None:
        return LoadResult(None, ctx.problems)
    base_dir = root_path.parent
    doc = read_yaml(root_path, ctx.problems, base_dir)
    if doc is None:
        return LoadResult(None, ctx.problems, display_path(root_path))
    if not isinstance(doc.data, dict):
        ctx.add(doc, (), f"the root must be a mapping with StreamingApplication, got {kind_of(doc.data)}")
        return LoadResult(None, ctx.problems, doc.file)

    header, sections = _split_root(doc, ctx)
    schema_defs = schema_section(sections.get("Schemas"), doc, base_dir, ctx)
    topics = _topics(sections.get("Topics"), doc, base_dir, ctx)
    pipelines = _pipelines(sections.get("Pipelines"), doc, ctx)
    if pipelines_dir is not None:
        _pipeline_dirs(Path(pipelines_dir), pipelines, ctx)

    schemas: dict[str, dict[str, Any]] = {}
    subjects: dict[str, str] = {}
    for tid, topic in topics.items():
        resolved = resolve_schema(tid, topic, schema_defs, base_dir, ctx)
        if resolved is not None:
            schemas[tid], subject = resolved
            subjects[tid] = subject or f"{tid}-value"

    app: StreamingApplication | None = None
    header_raw, header_loc = header
    tables = load_tables(sections.get("Tables"), ctx)
    default_env = str(header_raw.get("environment") or "development")
    chosen = env or default_env
    entries: dict[str, dict[str, Any]] = {"Topics": topics, "Pipelines": pipelines, "Tables": tables}
    apply_overlay(base_dir, chosen, default_env, entries, ctx)
    header_raw = {**header_raw, "environment": chosen}
    try:
        app = StreamingApplication.model_validate(
            {
                **header_raw,
                "topics": topics,
                "pipelines": pipelines,
                "tables": tables,
                "datasets": load_datasets(sections.get("Datasets"), ctx),
                "models": load_models(sections.get("Models"), ctx),
                "schemas": schemas,
                "subjects": subjects,
            }
        )
    except ValidationError as exc:
        report = ctx.reporter(header_loc.doc, header_loc.path)
        translate(exc, header_raw, StreamingApplication, {}, {}, lambda p, m: report(p, m))
    if app is not None:
        cross_check(app, ctx.places, ctx.add, pipelines_dir is not None)
        check_tables(app, ctx.places, ctx.add)
        check_datasets(app, ctx.places, ctx.add)
        check_models(app, ctx.places, ctx.add)
    ctx.problems.sort(key=lambda p: (p.severity != "error", p.file, p.line or 0, p.path))
    return LoadResult(app, ctx.problems, doc.file, ctx.places)


def load_application(
    registry: Path | str, pipelines_dir: Path | str | None = None, env: str | None = None
) -> StreamingApplication:
    """Load the registry or raise :class:`RegistryError` with every problem."""
    return load_registry(registry, pipelines_dir, env).require()


def _find_root(registry: Path, ctx: LoadContext) -> Path | None:
    if registry.is_file():
        return registry
    if not registry.is_dir():
        ctx.add(
            display_path(registry),
            (),
            "registry not found (expected a directory holding pipelines.yaml)",
        )
        return None
    for name in ROOT_FILES:
        if os.path.lexists(registry / name):  # a special file or bad link is reported when read
            return registry / name
    ctx.add(display_path(registry), (), f"no {ROOT_FILES[0]} in this directory")
    return None


def _split_root(doc: YamlDoc, ctx: LoadContext) -> tuple[tuple[dict[str, Any], Located], dict[str, Located]]:
    """Find the header fields and the three sections, wherever the seed's layouts put them."""
    data: dict[str, Any] = doc.data
    sections: dict[str, Located] = {}
    header: dict[str, Any] = {}
    header_path: PathKey = ()
    app = data.get("StreamingApplication")
    allowed_root = ["StreamingApplication", *SECTIONS]
    for key in data:
        if key not in allowed_root:
            ctx.add(doc, (key,), f"unknown section '{key}'{suggest(key, allowed_root)}")
    if "StreamingApplication" not in data:
        ctx.add(doc, (), "missing the StreamingApplication section (it holds id, environment, ...)")
    elif not isinstance(app, dict):
        ctx.add(doc, ("StreamingApplication",), f"must be a mapping, got {kind_of(app)}")
    else:
        header_path = ("StreamingApplication",)
        allowed_app = [*HEADER_KEYS, *SECTIONS]
        for key, value in app.items():
            if key in SECTIONS:
                sections[key] = Located(doc, ("StreamingApplication", key))
            elif key in HEADER_KEYS:
                header[key] = value
            else:
                ctx.add(
                    doc,
                    ("StreamingApplication", key),
                    f"unknown key '{key}'{suggest(key, allowed_app)}",
                )
    for key in SECTIONS:
        if key in data:
            if key in sections:
                ctx.add(
                    doc,
                    (key,),
                    f"'{key}' is given both at the root and under StreamingApplication; keep one",
                )
            else:
                sections[key] = Located(doc, (key,))
    header.setdefault("id", header.get("id", "application"))
    return (header, Located(doc, header_path)), sections


def _topics(
    loc: Located | None, root: YamlDoc, base_dir: Path, ctx: LoadContext
) -> dict[str, StreamingTopic]:
    if loc is None:
        default = base_dir / "topics.yaml"
        if not os.path.lexists(default):
            return {}
        ref: Any = "topics.yaml"
        at = Located(root, ())
    else:
        ref, at = value_at(loc), loc
    if isinstance(ref, str):
        refused = confined_reference(ref)
        if refused is not None:
            ctx.add(at.doc, at.path, f"Topics file {refused}")
            return {}
        path = base_dir / ref
        doc = read_yaml(path, ctx.problems, base_dir)
        if doc is None:
            if loc is not None and not os.path.lexists(path):
                ctx.problems.pop()
                ctx.add(loc.doc, loc.path, f"Topics refers to '{ref}', which does not exist")
            return {}
        data = doc.data
        if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in ("topics", "Topics"):
            key = next(iter(data))
            return _topic_collection(data[key], Located(doc, (key,)), ctx)
        if isinstance(data, dict):
            ctx.add(
                doc,
                (),
                "topics.yaml must hold one key, 'topics', with the list of topics"
                + suggest(next(iter(data), ""), ["topics"]),
            )
            return {}
        return _topic_collection(data, Located(doc, ()), ctx)
    return _topic_collection(ref, at, ctx)


def _topic_collection(value: Any, at: Located, ctx: LoadContext) -> dict[str, StreamingTopic]:
    out: dict[str, StreamingTopic] = {}
    if value is None:
        return out
    if isinstance(value, dict):
        items = [((*at.path, key), key, raw) for key, raw in value.items()]
    elif isinstance(value, list):
        items = [((*at.path, i), None, raw) for i, raw in enumerate(value)]
    else:
        ctx.add(at.doc, at.path, f"topics must be a mapping or a list, got {kind_of(value)}")
        return out
    for path, key, raw in items:
        if raw is None and key is not None:
            raw = {}
        if not isinstance(raw, dict):
            ctx.add(at.doc, path, f"a topic must be a mapping, got {kind_of(raw)}")
            continue
        report = ctx.reporter(at.doc, path)
        spelled = {"id": "topic_id"} if "topic_id" in raw and "id" not in raw else {}
        norm = normalise(raw, TOPIC_ALIASES, report)
        if key is not None:
            if "id" in norm and norm["id"] != key:
                report(
                    ("id",),
                    f"id '{norm['id']}' differs from its key '{key}'; the key is the topic id",
                )
            norm["id"] = key
        if "id" not in norm:
            report((), "a topic needs 'topic_id' (or 'id')")
            continue
        tid = str(norm["id"])
        if tid in out:
            report(("id",), f"topic '{tid}' is defined twice")
            continue
        topic = validate_model(StreamingTopic, norm, TOPIC_ALIASES, spelled, report)
        if topic is not None:
            out[tid] = topic
            ctx.places[f"topic:{tid}"] = Located(at.doc, path)
    return out


def _pipelines(loc: Located | None, root: YamlDoc, ctx: LoadContext) -> dict[str, StreamingPipeline]:
    out: dict[str, StreamingPipeline] = {}
    if loc is None:
        return out
    value = value_at(loc)
    if value is None:
        return out
    if not isinstance(value, dict):
        ctx.add(
            loc.doc,
            loc.path,
            f"Pipelines must be a mapping of pipeline id to pipeline, got {kind_of(value)}",
        )
        return out
    for key, raw in value.items():
        path = (*loc.path, key)
        report = ctx.reporter(loc.doc, path)
        unsafe = safe_id_problem(key, "a pipeline id")
        if unsafe is not None:
            report((), f"{unsafe} (it names the directory pipelines/<id>/, the consumer group and the asset)")
            continue
        if not isinstance(raw, dict):
            report((), f"a pipeline must be a mapping, got {kind_of(raw)}")
            continue
        norm = normalise(raw, PIPELINE_ALIASES, report)
        spelled = {"name": "id"} if "id" in raw else {}
        for section, aliases in (("input", INPUT_ALIASES), ("output", OUTPUT_ALIASES)):
            if isinstance(norm.get(section), dict):
                norm[section] = normalise(norm[section], aliases, ctx.reporter(loc.doc, (*path, section)))
        norm["key"] = str(key)
        ctx.declared_pipelines.add(str(key))
        pipeline = validate_model(StreamingPipeline, norm, PIPELINE_ALIASES, spelled, report)
        if pipeline is not None:
            out[str(key)] = pipeline
            ctx.places[f"pipeline:{key}"] = Located(loc.doc, path)
    return out


def _pipeline_dirs(root: Path, pipelines: dict[str, StreamingPipeline], ctx: LoadContext) -> None:
    shown = display_path(root)
    if not root.is_dir():
        ctx.add(shown, (), "pipelines directory not found")
        return
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    for key, pipeline in pipelines.items():
        place = ctx.places[f"pipeline:{key}"]
        folder = root / key
        if not folder.is_dir():
            ctx.add(
                place.doc,
                place.path,
                f"pipeline '{key}' has no directory {shown}/{key}/ (the directory name must "
                f"match the pipeline id){suggest(key, present)}",
            )
            continue
        check_custom_code(folder, pipeline, place, ctx)
        config = folder / "config.yaml"
        if os.path.lexists(config):
            doc = read_yaml(config, ctx.problems, folder)
            if doc is not None and not isinstance(doc.data, dict):
                ctx.add(doc, (), f"config.yaml must be a mapping of settings, got {kind_of(doc.data)}")
            elif doc is not None:
                pipeline.config = {**doc.data, **pipeline.config}
                ctx.places[f"config:{key}"] = Located(doc, ())
    for name in present:
        if name not in pipelines and name not in ctx.declared_pipelines:
            ctx.add(
                f"{shown}/{name}",
                (),
                f"directory matches no pipeline in the registry{suggest(name, list(pipelines))}",
                "warning",
            )
