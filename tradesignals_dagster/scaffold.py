"""``tradesignals new pipeline``: a new pipeline's files and its registry entries, all or nothing.

Creates ``pipelines/<id>/`` (``app.py``, ``config.yaml``, ``README.md``, ``Dockerfile``,
``test_<id>.py`` using :mod:`tradesignals_dagster.testing`), adds the pipeline to
``pipelines.yaml`` and - when the output topic is new - the topic (to ``topics.yaml`` or the
inline ``Topics`` section) with a schema stub ``schemas/<topic>.avsc``. The registry files are
edited by inserting text, so their comments and layout stay as written. Then the registry is
validated; any failure (validation included) restores every file as it was and removes what
was created, so nothing is half-written.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.application import check_every_environment, load_app
from tradesignals_dagster.scaffold_templates import pipeline_files, relative, schema_stub
from tradesignals_dagster.settings import Settings

Template = Literal["passthrough", "stateful", "window"]
TEMPLATES: tuple[Template, ...] = ("passthrough", "stateful", "window")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ScaffoldError(TradesignalsError):
    """The scaffold was refused (exit 2): nothing was written."""

    exit_code = 2


@dataclass
class ScaffoldResult:
    """What the scaffold created and changed."""

    pipeline: str
    created: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineSpec:
    """What the user asked for."""

    pipeline_id: str
    input_topic: str
    output_topic: str
    template: Template = "passthrough"
    key_field: str = "symbol"
    time_field: str = "timestamp"
    size_ms: int = 1000


def new_pipeline(settings: Settings, spec: PipelineSpec) -> ScaffoldResult:
    """Scaffold ``spec`` into the registry of ``settings`` (see the module docstring)."""
    app = load_app(settings)  # a registry that is broken already is reported as such (exit 2)
    pid, out_topic = spec.pipeline_id, spec.output_topic
    if not _ID.match(pid):
        raise ScaffoldError(
            f"pipeline id {pid!r}: use lower case letters, digits and _ (starting with a letter)"
        )
    if spec.template not in TEMPLATES:
        raise ScaffoldError(f"--template {spec.template!r}: choose one of {', '.join(TEMPLATES)}")
    if spec.size_ms <= 0:
        raise ScaffoldError(f"--window-ms {spec.size_ms}: a window size must be positive")
    folder = settings.pipelines_dir / pid
    if pid in app.pipelines:
        raise ScaffoldError(f"pipeline {pid!r} already exists in {settings.registry}/pipelines.yaml")
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists; choose another id or remove it")
    in_schema = app.schemas.get(spec.input_topic)
    if spec.input_topic not in app.topics or in_schema is None:
        raise ScaffoldError(f"--input-topic {spec.input_topic!r} is not an Avro topic of the registry")
    if out_topic == spec.input_topic:
        raise ScaffoldError("--output-topic must differ from --input-topic")
    writers = [k for k, p in app.pipelines.items() if p.output.topic_id == out_topic]
    if writers:
        raise ScaffoldError(
            f"--output-topic {out_topic!r} already exists and is written by pipeline {writers[0]!r}"
        )
    if out_topic in app.topics and spec.template != "passthrough":
        raise ScaffoldError(
            f"--output-topic {out_topic!r} already exists; a {spec.template} pipeline needs a new one"
        )
    names = [f["name"] for f in in_schema.get("fields", [])]
    for option, name in (("--key-field", spec.key_field), ("--time-field", spec.time_field)):
        if option == "--time-field" and spec.template != "window":
            continue
        if name not in names:
            raise ScaffoldError(
                f"{option} {name!r}: input topic {spec.input_topic}'s schema has no such field "
                f"(fields: {', '.join(names)})"
            )
    return _write(settings, spec, in_schema, new_topic=out_topic not in app.topics)


def _write(
    settings: Settings, spec: PipelineSpec, in_schema: dict[str, Any], *, new_topic: bool
) -> ScaffoldResult:
    """Write files and registry edits; undo all of it on any failure."""
    result = ScaffoldResult(spec.pipeline_id)
    originals: dict[Path, str] = {}
    folder = settings.pipelines_dir / spec.pipeline_id
    try:
        folder.mkdir(parents=True)
        result.created.append(folder)
        registry_rel = relative(settings.registry.resolve(), folder.resolve())
        for name, text in pipeline_files(spec, in_schema, registry_rel).items():
            (folder / name).write_text(text)
        reg = settings.registry
        main = _main_file(reg)
        _edit(originals, main, lambda t: _insert_pipeline(t, spec, main))
        if new_topic:
            stub = reg / "schemas" / f"{spec.output_topic}.avsc"
            if stub.exists():
                raise ScaffoldError(f"{stub} already exists (a schema for a topic the registry lacks)")
            stub.parent.mkdir(exist_ok=True)
            stub.write_text(json.dumps(schema_stub(spec, in_schema), indent=2) + "\n")
            result.created.append(stub)
            topics = reg / "topics.yaml"
            if topics.is_file():
                _edit(originals, topics, lambda t: _insert_topic_item(t, spec.output_topic))
            else:
                _edit(originals, main, lambda t: _insert_inline_topic(t, spec.output_topic, main))
        checked, _ = check_every_environment(settings)
        if checked.errors:
            shown = "; ".join(p.render() for p in checked.errors[:5])
            raise ScaffoldError(
                f"the registry with {spec.pipeline_id} does not validate (nothing written): {shown}"
            )
    except BaseException:
        for path, text in originals.items():
            path.write_text(text)
        for path in reversed(result.created):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        raise
    result.changed = list(originals)
    return result


def _main_file(reg: Path) -> Path:
    for name in ("pipelines.yaml", "pipelines.yml"):
        if (reg / name).is_file():
            return reg / name
    raise ScaffoldError(f"{reg} has no pipelines.yaml")


def _edit(originals: dict[Path, str], path: Path, change: Any) -> None:
    text = path.read_text()
    originals.setdefault(path, text)
    path.write_text(change(text))


def _section(lines: list[str], name: str, path: Path) -> tuple[int, int, int]:
    """Line index of section ``name:``, its indentation, and the index where it ends (before
    trailing blank lines and the comments that belong to the next section)."""
    for i, line in enumerate(lines):
        m = re.match(rf"^(\s*){name}:\s*(#.*)?$", line)
        if m:
            indent = len(m.group(1))
            end = len(lines)
            for j in range(i + 1, len(lines)):
                s = lines[j]
                if s.strip() and not s.lstrip().startswith("#") and len(s) - len(s.lstrip()) <= indent:
                    end = j
                    break
            while end > i + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1
            return i, indent, end
    raise ScaffoldError(f"{path}: no '{name}:' section to add to (write it as a block mapping)")


def _child_indent(lines: list[str], start: int, end: int, indent: int) -> int:
    for line in lines[start + 1 : end]:
        if line.strip() and not line.lstrip().startswith("#"):
            return len(line) - len(line.lstrip())
    return indent + 2


def _insert_pipeline(text: str, spec: PipelineSpec, path: Path) -> str:
    lines = text.splitlines()
    start, indent, end = _section(lines, "Pipelines", path)
    pad = " " * _child_indent(lines, start, end, indent)
    entry = [
        "",
        f"{pad}# {spec.pipeline_id}: scaffolded by `tradesignals new pipeline` ({spec.template} template).",
        f"{pad}{spec.pipeline_id}:",
        f"{pad}  doc: {spec.template.capitalize()} pipeline from {spec.input_topic} to {spec.output_topic}.",
        f"{pad}  input:",
        f"{pad}    type: kafka",
        f"{pad}    consumer_group_id: {spec.pipeline_id}_consumer",
        f"{pad}    kafka_topic_id: {spec.input_topic}",
        f"{pad}  output:",
        f"{pad}    type: kafka",
        f"{pad}    kafka_topic_id: {spec.output_topic}",
    ]
    return "\n".join(lines[:end] + entry + lines[end:]) + "\n"


def _insert_topic_item(text: str, topic: str) -> str:
    lines = text.splitlines()
    items = [line for line in lines if re.match(r"^\s*-\s+topic_id:", line)]
    dash = items[-1][: items[-1].index("-")] if items else "  "
    pad = dash + "  "
    entry = ["", f"{dash}- topic_id: {topic}"] + [
        f"{pad}{line}"
        for line in (
            "num_partitions: 4",
            "replication_factor: 1",
            "min_insync_replicas: 1",
            "cleanup_policy: delete",
            "key_serializer: string",
            "value_serializer: avro",
            f"value_schema_id: {topic}",
        )
    ]
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines + entry) + "\n"


def _insert_inline_topic(text: str, topic: str, path: Path) -> str:
    lines = text.splitlines()
    start, indent, end = _section(lines, "Topics", path)
    pad = " " * _child_indent(lines, start, end, indent)
    entry = [
        f"{pad}{topic}:",
        f"{pad}  num_partitions: 4",
        f"{pad}  replication_factor: 1",
        f"{pad}  min_insync_replicas: 1",
        f"{pad}  value_serializer: avro",
        f"{pad}  value_schema_id: {topic}",
    ]
    return "\n".join(lines[:end] + entry + lines[end:]) + "\n"
