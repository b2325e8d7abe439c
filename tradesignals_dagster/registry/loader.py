"""Load a registry directory into a :class:`StreamingApplication`, collecting every problem.

The layout is the seed's: ``pipelines.yaml`` with ``StreamingApplication`` / ``Topics`` /
``Pipelines`` (at the root or nested under ``StreamingApplication``), ``Topics`` inline or as a
reference to ``topics.yaml``, schemas inline (``value_schema``), in a ``Schemas`` section, or as
files under ``schemas/`` (``<id>.avsc`` in Avro JSON, ``<id>.yaml`` in the registry's notation),
and per-pipeline ``pipelines/<id>/config.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tradesignals_dagster.registry import avro
from tradesignals_dagster.registry.checks import cross_check
from tradesignals_dagster.registry.errors import Problem, RegistryError, display_path
from tradesignals_dagster.registry.models import (
    StreamingApplication,
    StreamingPipeline,
    StreamingTopic,
    ValueSchema,
)
from tradesignals_dagster.registry.normalise import (
    INPUT_ALIASES,
    OUTPUT_ALIASES,
    PIPELINE_ALIASES,
    SPELLINGS,
    TOPIC_ALIASES,
    normalise,
    suggest,
    translate,
)
from tradesignals_dagster.registry.yamlsource import PathKey, YamlDoc, format_path, read_yaml

ROOT_FILES = ("pipelines.yaml", "pipelines.yml", "pipeline.yaml")
SECTIONS = ("Topics", "Pipelines", "Schemas")
HEADER_KEYS = ("id", "environment", "log_level", "reset_topics_on_start")
SCHEMA_SUFFIXES = (".avsc", ".json", ".yaml", ".yml")


@dataclass
class Located:
    """Where an object of the registry was written: its file and YAML path."""

    doc: YamlDoc
    path: PathKey


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


def _as_spelled(doc: YamlDoc, path: PathKey) -> PathKey:
    """The path as the user spelled its last key (``kafka_topic_id`` for ``topic_id``...)."""
    if not path or path in doc.lines or not isinstance(path[-1], str):
        return path
    for other in SPELLINGS.get(path[-1], ()):
        if (*path[:-1], other) in doc.lines:
            return (*path[:-1], other)
    return path


class _Ctx:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.places: dict[str, Located] = {}
        self.declared_pipelines: set[str] = set()

    def add(self, doc: YamlDoc | str, path: PathKey, message: str, severity: str = "error") -> None:
        if isinstance(doc, YamlDoc):
            path = _as_spelled(doc, path)
            file, line = doc.file, doc.line(path)
        else:
            file, line = doc, None
        self.problems.append(
            Problem(
                file,
                line,
                format_path(path),
                message,
                "warning" if severity == "warning" else "error",
            )
        )

    def reporter(self, doc: YamlDoc, base: PathKey) -> Any:
        return lambda rel, msg, severity="error": self.add(doc, (*base, *rel), msg, severity)


def load_registry(registry: Path | str, pipelines_dir: Path | str | None = None) -> LoadResult:
    """Read and check the registry at ``registry`` (a directory or its ``pipelines.yaml``).

    ``pipelines_dir`` adds the per-pipeline checks and ``config.yaml`` files. Never raises for bad
    input: every problem is in the result; call :meth:`LoadResult.require` to insist.
    """
    ctx = _Ctx()
    registry = Path(registry)
    root_path = _find_root(registry, ctx)
    if root_path is None:
        return LoadResult(None, ctx.problems)
    doc = read_yaml(root_path, ctx.problems)
    if doc is None:
        return LoadResult(None, ctx.problems, display_path(root_path))
    if not isinstance(doc.data, dict):
        ctx.add(doc, (), f"the root must be a mapping with StreamingApplication, got {_kind(doc.data)}")
        return LoadResult(None, ctx.problems, doc.file)

    header, sections = _split_root(doc, ctx)
    base_dir = root_path.parent
    schema_defs = _schema_section(sections.get("Schemas"), doc, base_dir, ctx)
    topics = _topics(sections.get("Topics"), doc, base_dir, ctx)
    pipelines = _pipelines(sections.get("Pipelines"), doc, ctx)
    if pipelines_dir is not None:
        _pipeline_dirs(Path(pipelines_dir), pipelines, ctx)

    schemas: dict[str, dict[str, Any]] = {}
    subjects: dict[str, str] = {}
    for tid, topic in topics.items():
        resolved = _resolve_schema(tid, topic, schema_defs, base_dir, ctx)
        if resolved is not None:
            schemas[tid], subject = resolved
            subjects[tid] = subject or f"{tid}-value"

    app: StreamingApplication | None = None
    header_raw, header_loc = header
    try:
        app = StreamingApplication.model_validate(
            {
                **header_raw,
                "topics": topics,
                "pipelines": pipelines,
                "schemas": schemas,
                "subjects": subjects,
            }
        )
    except ValidationError as exc:
        report = ctx.reporter(header_loc.doc, header_loc.path)
        translate(exc, header_raw, StreamingApplication, {}, {}, lambda p, m: report(p, m))
    if app is not None:
        cross_check(app, ctx.places, ctx.add, pipelines_dir is not None)
    ctx.problems.sort(key=lambda p: (p.severity != "error", p.file, p.line or 0, p.path))
    return LoadResult(app, ctx.problems, doc.file, ctx.places)


def load_application(registry: Path | str, pipelines_dir: Path | str | None = None) -> StreamingApplication:
    """Load the registry or raise :class:`RegistryError` with every problem."""
    return load_registry(registry, pipelines_dir).require()


def _find_root(registry: Path, ctx: _Ctx) -> Path | None:
    if registry.is_file():
        return registry
    if not registry.exists():
        ctx.add(
            display_path(registry),
            (),
            "registry not found (expected a directory holding pipelines.yaml)",
        )
        return None
    for name in ROOT_FILES:
        if (registry / name).is_file():
            return registry / name
    ctx.add(display_path(registry), (), f"no {ROOT_FILES[0]} in this directory")
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _split_root(doc: YamlDoc, ctx: _Ctx) -> tuple[tuple[dict[str, Any], Located], dict[str, Located]]:
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
        ctx.add(doc, ("StreamingApplication",), f"must be a mapping, got {_kind(app)}")
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


def _value(loc: Located) -> Any:
    node: Any = loc.doc.data
    for part in loc.path:
        node = node[part]
    return node


def _topics(loc: Located | None, root: YamlDoc, base_dir: Path, ctx: _Ctx) -> dict[str, StreamingTopic]:
    if loc is None:
        default = base_dir / "topics.yaml"
        if not default.is_file():
            return {}
        ref: Any = "topics.yaml"
        at = Located(root, ())
    else:
        ref, at = _value(loc), loc
    if isinstance(ref, str):
        path = base_dir / ref
        doc = read_yaml(path, ctx.problems)
        if doc is None:
            if loc is not None and not path.exists():
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


def _topic_collection(value: Any, at: Located, ctx: _Ctx) -> dict[str, StreamingTopic]:
    out: dict[str, StreamingTopic] = {}
    if value is None:
        return out
    if isinstance(value, dict):
        items = [((*at.path, key), key, raw) for key, raw in value.items()]
    elif isinstance(value, list):
        items = [((*at.path, i), None, raw) for i, raw in enumerate(value)]
    else:
        ctx.add(at.doc, at.path, f"topics must be a mapping or a list, got {_kind(value)}")
        return out
    for path, key, raw in items:
        if raw is None and key is not None:
            raw = {}
        if not isinstance(raw, dict):
            ctx.add(at.doc, path, f"a topic must be a mapping, got {_kind(raw)}")
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
        topic = _validate(StreamingTopic, norm, TOPIC_ALIASES, spelled, report)
        if topic is not None:
            out[tid] = topic
            ctx.places[f"topic:{tid}"] = Located(at.doc, path)
    return out


def _validate(
    model: type[BaseModel],
    raw: dict[str, Any],
    aliases: dict[str, tuple[str, ...]],
    spelled: dict[str, str],
    report: Any,
) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        translate(exc, raw, model, aliases, spelled, lambda p, m: report(p, m))
        return None


def _pipelines(loc: Located | None, root: YamlDoc, ctx: _Ctx) -> dict[str, StreamingPipeline]:
    out: dict[str, StreamingPipeline] = {}
    if loc is None:
        return out
    value = _value(loc)
    if value is None:
        return out
    if not isinstance(value, dict):
        ctx.add(
            loc.doc,
            loc.path,
            f"Pipelines must be a mapping of pipeline id to pipeline, got {_kind(value)}",
        )
        return out
    for key, raw in value.items():
        path = (*loc.path, key)
        report = ctx.reporter(loc.doc, path)
        if not isinstance(raw, dict):
            report((), f"a pipeline must be a mapping, got {_kind(raw)}")
            continue
        norm = normalise(raw, PIPELINE_ALIASES, report)
        spelled = {"name": "id"} if "id" in raw else {}
        for section, aliases in (("input", INPUT_ALIASES), ("output", OUTPUT_ALIASES)):
            if isinstance(norm.get(section), dict):
                norm[section] = normalise(norm[section], aliases, ctx.reporter(loc.doc, (*path, section)))
        norm["key"] = str(key)
        ctx.declared_pipelines.add(str(key))
        pipeline = _validate(StreamingPipeline, norm, PIPELINE_ALIASES, spelled, report)
        if pipeline is not None:
            out[str(key)] = pipeline
            ctx.places[f"pipeline:{key}"] = Located(loc.doc, path)
    return out


def _schema_section(loc: Located | None, root: YamlDoc, base_dir: Path, ctx: _Ctx) -> dict[str, Located]:
    out: dict[str, Located] = {}
    if loc is None:
        return out
    value = _value(loc)
    if not isinstance(value, dict):
        ctx.add(
            loc.doc,
            loc.path,
            f"Schemas must be a mapping of schema id to schema, got {_kind(value)}",
        )
        return out
    for sid, raw in value.items():
        if isinstance(raw, str):
            doc = read_yaml(base_dir / raw, ctx.problems)
            if doc is not None:
                out[str(sid)] = Located(doc, ())
        else:
            out[str(sid)] = Located(loc.doc, (*loc.path, sid))
    return out


def _resolve_schema(
    tid: str, topic: StreamingTopic, defs: dict[str, Located], base_dir: Path, ctx: _Ctx
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
    if loc is None:
        report(
            ("value_schema_id",),
            f"schema '{sid}' is not in the Schemas section nor at schemas/{sid}.avsc or .yaml"
            + suggest(sid, list(defs)),
        )
        return None
    key = f"schema:{sid}"
    raw = _value(loc)
    if not isinstance(raw, dict):
        ctx.add(loc.doc, loc.path, f"a schema must be a mapping, got {_kind(raw)}")
        return None
    if loc.doc.file.endswith((".avsc", ".json")):
        subject = None
        return _final(raw, loc.doc, loc.path, ctx), subject
    schema = _validate(ValueSchema, raw, {}, {}, ctx.reporter(loc.doc, loc.path))
    if schema is None:
        return None
    reporter = ctx.reporter(loc.doc, loc.path) if key not in ctx.places else (lambda *a, **k: None)
    ctx.places.setdefault(key, loc)
    return _final(avro.to_avro(schema, reporter), loc.doc, loc.path, ctx), schema.subject


def _schema_file(sid: str, base_dir: Path, ctx: _Ctx) -> Located | None:
    for suffix in SCHEMA_SUFFIXES:
        path = base_dir / "schemas" / f"{sid}{suffix}"
        if path.is_file():
            doc = read_yaml(path, ctx.problems)
            return Located(doc, ()) if doc is not None else None
    return None


def _final(avro_json: dict[str, Any], doc: YamlDoc, path: PathKey, ctx: _Ctx) -> dict[str, Any]:
    prefix = format_path(path)
    if any(p.file == doc.file and p.severity == "error" and p.path.startswith(prefix) for p in ctx.problems):
        return avro_json  # already explained field by field; fastavro would repeat the first
    reason = avro.check_parses(avro_json)
    if reason is not None:
        ctx.add(doc, path, f"not a valid Avro schema: {reason}")
    return avro_json


def _pipeline_dirs(root: Path, pipelines: dict[str, StreamingPipeline], ctx: _Ctx) -> None:
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
        config = folder / "config.yaml"
        if config.is_file():
            doc = read_yaml(config, ctx.problems)
            if doc is not None and not isinstance(doc.data, dict):
                ctx.add(doc, (), f"config.yaml must be a mapping of settings, got {_kind(doc.data)}")
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
