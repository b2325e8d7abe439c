"""The files ``tradesignals new pipeline`` writes, per template (passthrough, stateful, window).

Each template is a working pipeline and a test of it through :mod:`tradesignals_dagster.testing`,
so a new pipeline starts green and the developer changes one thing at a time.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradesignals_dagster.scaffold import PipelineSpec

DOCKERFILE = """\
# The image of one pipeline: the shared runtime image (Dockerfile.runtime) plus the pipeline's code.
# Built by `tradesignals images build <id>`; the build context is pipelines/<id>/ without
# config.yaml (configuration is mounted read-only at run time, so a config change needs no build).
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE}
ARG PIPELINE_ID
COPY . /app/pipelines/${PIPELINE_ID}/
WORKDIR /app/pipelines/${PIPELINE_ID}
ENV TRADESIGNALS_PIPELINE=${PIPELINE_ID}
CMD ["python", "app.py"]
"""

_APP_HEAD = '''"""{pid}: {summary}"""

from collections.abc import {abc}
from typing import Any

from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.base import {base}
'''
_IMPORTS = {
    "passthrough": ("Mapping, Sequence", "BuildContext, SourcePosition"),
    "stateful": ("Iterable, Mapping, Sequence", "BuildContext, Reject, SourcePosition"),
    "window": ("Mapping", "BuildContext"),
}

_PASSTHROUGH = '''

class Processor:
    """Each {input} record becomes one {output} record (change process to transform them)."""

    def process(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[SourcePosition] | None = None
    ) -> list[Any]:
        """Outputs in order; return Reject(record, reason) for a record to dead-letter."""
        return [dict(r) for r in records]


def build(ctx: BuildContext) -> Processor:
    """The processor, from config.yaml (ctx.config)."""
    return Processor()
'''

_STATEFUL = '''

class Processor:
    """A running count of records per key; the counts survive restarts (state topic)."""

    def __init__(self, key_field: str) -> None:
        self.key_field = key_field
        self.counts: dict[str, int] = {{}}
        self._dirty: set[str] = set()

    def process(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[SourcePosition] | None = None
    ) -> list[Any]:
        """One output per record: its key and how many records that key has had."""
        out: list[Any] = []
        for record in records:
            key = record.get(self.key_field)
            if not isinstance(key, str) or not key:
                out.append(Reject(record, f"{{self.key_field}} must be a non-empty string, got {{key!r}}"))
                continue
            count = self.counts[key] = self.counts.get(key, 0) + 1
            self._dirty.add(key)
            out.append({{self.key_field: key, "count": count}})
        return out

    def dirty_keys(self) -> set[str]:
        """Keys whose count changed since the previous call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """The state of one key, as JSON."""
        return {{"key": key, "count": self.counts[key]}} if key in self.counts else None

    def restore(self, snapshots: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by snapshot()."""
        for snap in snapshots:
            self.counts[str(snap["key"])] = int(snap["count"])


def build(ctx: BuildContext) -> Processor:
    """The processor: state keyed by the pipeline's key field (runtime.key_field)."""
    key_field = ctx.key_field or "{key}"
    ctx.require_field(key_field, "runtime.key_field")
    return Processor(key_field)
'''

_WINDOW = '''from tradesignals_dagster.streaming.windows import EventTimeWindows, WindowConfig


class CountPerWindow:
    """What a window computes: here, how many records it holds (the accumulator is a JSON list)."""

    def __init__(self, key_field: str) -> None:
        self.key_field = key_field

    def start(self, record: Mapping[str, Any]) -> list[Any]:
        """A new window holding ``record``."""
        return [1]

    def add(self, acc: list[Any], record: Mapping[str, Any]) -> None:
        """Add ``record`` to the window."""
        acc[0] += 1

    def result(self, key: str, start: int, end: int, acc: list[Any], revision: int) -> dict[str, Any]:
        """The output record of a closed window."""
        window = {{"window_start": start, "window_end": end, "revision": revision}}
        return {{self.key_field: key, **window, "count": acc[0]}}


def build(ctx: BuildContext) -> EventTimeWindows:
    """Windows from config.yaml (window:, time_field), per the pipeline's key field."""
    key_field = ctx.key_field or "{key}"
    time_field = str(ctx.config.get("time_field", "{time}"))
    ctx.require_field(key_field, "runtime.key_field")
    ctx.require_field(time_field, "time_field")
    window = WindowConfig(**ctx.config.get("window", {{}}))
    return EventTimeWindows(window, CountPerWindow(key_field), key_field=key_field, time_field=time_field)
'''

_MAIN = """

if __name__ == "__main__":
    main(build)
"""


def _sample(schema: dict[str, Any], spec: PipelineSpec) -> dict[str, Any]:
    """A record of ``schema`` with plain values (the key "K1", the time 0)."""
    out: dict[str, Any] = {}
    for f in schema.get("fields", []):
        t = f["type"]
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        base = t.get("type") if isinstance(t, dict) else t
        logical = t.get("logicalType") if isinstance(t, dict) else None
        name = f["name"]
        if name == spec.key_field:
            out[name] = "K1"
        elif name == spec.time_field and base in ("int", "long"):
            out[name] = 0
        elif logical == "decimal" or base in ("int", "long"):
            out[name] = 10
        elif base in ("float", "double"):
            out[name] = 1.5
        elif base == "boolean":
            out[name] = True
        elif base == "null":
            out[name] = None
        else:
            out[name] = "x"
    return out


def _literal(record: dict[str, Any]) -> str:
    """``record`` as Python source in the repository's format (one key per line)."""
    lines = [
        f"    {json.dumps(k)}: {json.dumps(v) if isinstance(v, str) else repr(v)}," for k, v in record.items()
    ]
    return "{\n" + "\n".join(lines) + "\n}"


def _test(spec: PipelineSpec, registry_rel: str, sample: dict[str, Any]) -> str:
    pid, qk, qt = spec.pipeline_id, json.dumps(spec.key_field), json.dumps(spec.time_field)
    names = {
        "passthrough": "build_processor, run_records",
        "stateful": "StateTopic, build_processor, round_trip_state, run_records",
        "window": "build_processor, round_trip_state, run_records",
    }[spec.template]
    head = f'''"""Tests of {pid}, run in memory through the code path of `tradesignals pipelines replay`."""

from pathlib import Path
from typing import Any

from tradesignals_dagster.streaming.processors.base import Processor
from tradesignals_dagster.testing import {names}

HERE = Path(__file__).resolve().parent
REGISTRY = HERE / {json.dumps(registry_rel)}
SAMPLE: dict[str, Any] = {_literal(sample)}


def processor(**overrides: object) -> Processor:
    """This pipeline's processor, built from the registry and config.yaml as a replay does."""
    return build_processor(HERE.name, overrides, registry=REGISTRY, pipelines_dir=HERE.parent)
'''
    if spec.template == "passthrough":
        return (
            head
            + """

def test_records_pass_through() -> None:
    result = run_records(processor(), [SAMPLE])
    assert result.outputs == [SAMPLE] and result.rejected == []
"""
        )
    if spec.template == "stateful":
        return (
            head
            + f"""

def test_counts_per_key_survive_a_restart() -> None:
    proc, topic = processor(), StateTopic()
    assert [o["count"] for o in run_records(proc, [SAMPLE, SAMPLE]).outputs] == [1, 2]
    proc = round_trip_state(proc, processor, topic)
    assert run_records(proc, [SAMPLE]).outputs == [{{{qk}: "K1", "count": 3}}]


def test_a_record_without_a_key_is_rejected() -> None:
    result = run_records(processor(), [{{**SAMPLE, {qk}: ""}}])
    assert result.outputs == [] and result.rejected_indexes() == [0]
"""
        )
    size = spec.size_ms
    return (
        head
        + f"""

def test_a_window_closes_when_the_watermark_passes_its_end() -> None:
    later = {{**SAMPLE, {qt}: {size}}}
    result = run_records(processor(), [SAMPLE, SAMPLE, later])
    assert result.outputs == [
        {{{qk}: "K1", "window_start": 0, "window_end": {size}, "revision": 0, "count": 2}}
    ]


def test_open_windows_survive_a_restart() -> None:
    proc = round_trip_state(run_records_and_return(processor()), processor)
    result = run_records(proc, [{{**SAMPLE, {qt}: {size}}}])
    assert [o["count"] for o in result.outputs] == [1]


def run_records_and_return(proc: Processor) -> Processor:
    run_records(proc, [SAMPLE])
    return proc
"""
    )


def pipeline_files(spec: PipelineSpec, in_schema: dict[str, Any], registry_rel: str) -> dict[str, str]:
    """File name -> text of ``pipelines/<id>/``."""
    pid, key = spec.pipeline_id, spec.key_field
    summary = {
        "passthrough": f"records of {spec.input_topic} onto {spec.output_topic}.",
        "stateful": f"a running count per {key} of {spec.input_topic}, onto {spec.output_topic}.",
        "window": f"records of {spec.input_topic} counted per {key} over {spec.size_ms} ms windows.",
    }[spec.template]
    body = {"passthrough": _PASSTHROUGH, "stateful": _STATEFUL, "window": _WINDOW}[spec.template]
    abc, base = _IMPORTS[spec.template]
    app = _APP_HEAD.format(pid=pid, summary=summary, abc=abc, base=base) + body.format(
        input=spec.input_topic, output=spec.output_topic, key=key, time=spec.time_field
    )
    identity = {
        "passthrough": None,
        "stateful": f"[{key}, count]",
        "window": f"[{key}, window_start, revision]",
    }[spec.template]
    config = f"# Settings of {pid} (given to build() as ctx.config; runtime: is the runtime's).\n"
    if spec.template == "window":
        config += (
            f"time_field: {spec.time_field}\nwindow:\n  size_ms: {spec.size_ms}\n  grace_ms: 0\n"
            "  late: drop        # dead_letter | drop | update\n"
        )
    config += f"runtime:\n  key_field: {key}\n"
    if identity:
        config += f"  identity_fields: {identity}\n"
    readme = (
        f"# {pid}\n\n{summary[0].upper()}{summary[1:]}\n\n"
        f"Scaffolded by `tradesignals new pipeline {pid} --input-topic {spec.input_topic} "
        f"--output-topic {spec.output_topic} --template {spec.template}`.\n\n"
        "* `app.py` - `build(ctx)` returns the processor\n* `config.yaml` - its settings\n"
        "* `records.py` - TypedDicts of the input and output records (editor completion, mypy)\n"
        f"* `test_{pid}.py` - run it: `pytest pipelines/{pid}/test_{pid}.py`\n"
        f"* try it on a file: `tradesignals pipelines replay {pid} --input in.jsonl --output out.jsonl`\n"
    )
    return {
        "app.py": app + _MAIN,
        "config.yaml": config,
        "README.md": readme,
        "Dockerfile": DOCKERFILE,
        f"test_{pid}.py": _test(spec, registry_rel, _sample(in_schema, spec)),
        "records.py": typed_records({"InputRecord": in_schema, "OutputRecord": schema_stub(spec, in_schema)}),
    }


_PY_TYPES = {"string": "str", "int": "int", "long": "int", "float": "float", "double": "float",
             "boolean": "bool", "bytes": "bytes", "null": "None"}  # fmt: skip


def _py_type(avro: Any) -> str:
    """The Python type a processor sees for an Avro type (decimals as scaled ints)."""
    if isinstance(avro, list):
        return " | ".join(_py_type(t) for t in avro)
    if isinstance(avro, dict):
        if avro.get("logicalType") == "decimal":
            return "int"
        if avro.get("type") in ("array",):
            return f"list[{_py_type(avro.get('items'))}]"
        if avro.get("type") == "map":
            return f"dict[str, {_py_type(avro.get('values'))}]"
        return _py_type(avro.get("type"))
    return _PY_TYPES.get(str(avro), "Any")


def typed_records(schemas: dict[str, dict[str, Any]]) -> str:
    """``records.py``: a TypedDict per schema, for editor completion and mypy in app.py."""
    body: list[str] = []
    for name, schema in schemas.items():
        body += [
            "",
            "",
            f"class {name}(TypedDict):",
            f'    """A record of {schema.get("name", name)}."""',
            "",
        ]
        body += [f"    {f['name']}: {_py_type(f['type'])}" for f in schema.get("fields", [])]
    uses_any = any(": Any" in line or "[Any" in line or "| Any" in line for line in body)
    head = [
        '"""Record types of this pipeline\'s topics, from their Avro schemas (decimals are scaled ints,',
        'timestamps epoch ms). Written by `tradesignals new pipeline`; regenerate after a schema change."""',
        "",
        "from typing import Any, TypedDict" if uses_any else "from typing import TypedDict",
        "",
        "__all__ = [" + ", ".join(json.dumps(n) for n in schemas) + "]",
    ]
    return "\n".join([*head, *body, ""])


def schema_stub(spec: PipelineSpec, in_schema: dict[str, Any]) -> dict[str, Any]:
    """The Avro schema of a new output topic: the input's fields (passthrough), or what the
    stateful/window templates emit."""
    name = "".join(p.capitalize() for p in spec.output_topic.split("_") if p) or "Output"
    doc = f"Output of pipeline {spec.pipeline_id} (scaffolded stub: edit to what the pipeline emits)."
    if spec.template == "passthrough":
        fields = list(in_schema.get("fields", []))
    elif spec.template == "stateful":
        fields = [{"name": spec.key_field, "type": "string"}, {"name": "count", "type": "long"}]
    else:
        millis = {"type": "long", "logicalType": "timestamp-millis"}
        fields = [
            {"name": spec.key_field, "type": "string"},
            {"name": "window_start", "type": millis},
            {"name": "window_end", "type": millis},
            {"name": "revision", "type": "int"},
            {"name": "count", "type": "long"},
        ]
    return {"type": "record", "name": name, "namespace": spec.output_topic, "doc": doc, "fields": fields}


def relative(target: os.PathLike[str], start: os.PathLike[str]) -> str:
    """``target`` relative to ``start`` (how a generated test finds the registry)."""
    return os.path.relpath(target, start)
