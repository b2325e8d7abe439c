"""Render the registry reference (docs/registry.md) from the models, so it cannot drift."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tradesignals_dagster.registry.datasets import StreamingDataset
from tradesignals_dagster.registry.files import MAX_FILE_BYTES
from tradesignals_dagster.registry.identifiers import SAFE_ID_MAX, TOPIC_NAME_MAX
from tradesignals_dagster.registry.models import (
    UNSET,
    AvroField,
    DockerConfig,
    StreamingApplication,
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
    StreamingTopic,
    ValueSchema,
)
from tradesignals_dagster.registry.models_ml import StreamingModel
from tradesignals_dagster.registry.normalise import MODEL_ALIASES
from tradesignals_dagster.registry.tables import SinkSettings, StreamingTable, TableEngine
from tradesignals_dagster.registry.topic_configs import FIRST_CLASS
from tradesignals_dagster.registry.yamlbounds import MAX_ALIASES, MAX_DEPTH, MAX_NODES

SECTIONS: list[tuple[str, type[BaseModel], set[str]]] = [
    (
        "`StreamingApplication`",
        StreamingApplication,
        {"topics", "pipelines", "tables", "datasets", "models", "schemas", "subjects"},
    ),
    ("Topic (`Topics.<id>` or an item of `topics.yaml`)", StreamingTopic, set()),
    ("Value schema (`value_schema`, `Schemas.<id>`, `schemas/<id>.yaml`)", ValueSchema, set()),
    ("Schema field (`fields[]`)", AvroField, set()),
    ("Pipeline (`Pipelines.<id>`)", StreamingPipeline, {"key"}),
    ("Pipeline input (`input`)", StreamingPipelineInput, set()),
    ("Pipeline output (`output`)", StreamingPipelineOutput, set()),
    ("Docker (`docker`)", DockerConfig, set()),
    ("Table (`Tables.<id>`)", StreamingTable, {"key"}),
    ("Table engine (`engine`)", TableEngine, set()),
    ("Table sink (`sink`)", SinkSettings, set()),
    ("Dataset (`Datasets.<id>`)", StreamingDataset, {"key"}),
    ("Model (`Models.<id>`)", StreamingModel, {"key"}),
]


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is UNSET:
        return "none"
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def render() -> str:
    """The Markdown reference of every registry property."""
    lines = [
        "# Registry reference",
        "",
        "Generated from `tradesignals_dagster/registry/models.py` by",
        "`python -m tradesignals_dagster.registry.docs > docs/registry.md`; a unit test keeps it current.",
        "",
    ]
    for title, model, hidden in SECTIONS:
        aliases = MODEL_ALIASES.get(model.__name__, {})
        lines += [f"## {title}", "", "| property | also spelled | default | meaning |"]
        lines.append("| --- | --- | --- | --- |")
        for name, field in model.model_fields.items():
            if name in hidden:
                continue
            also = ", ".join(f"`{a}`" for a in aliases.get(name, ()))
            lines.append(f"| `{name}` | {also} | {_default(field)} | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines + _rules())


def _rules() -> list[str]:
    """The limits and rules the loader enforces beyond each property's type."""
    return [
        "## Files, names and limits",
        "",
        f"- Every file read is a regular file inside the registry directory (pipeline files: inside "
        f"`pipelines/<id>/`) once symlinks are resolved, at most {MAX_FILE_BYTES // 2**20} MiB, UTF-8. "
        "References (`Topics:`, `Schemas:` file names, `value_schema_id`) are relative paths without "
        "`..`. Directories, FIFOs, devices, symlink loops and unreadable files are reported as "
        "`file: reason`; nothing outside the registry is read or quoted.",
        f"- YAML is plain data: explicit tags (`!!python/...`, `!!binary`, `!custom`) are errors; "
        f"nesting is at most {MAX_DEPTH} levels, a file uses at most {MAX_ALIASES:,} aliases, "
        f"aliases may not contain themselves and may expand to at most {MAX_NODES:,} values.",
        "- Keys are strings and unique: `yes:`, `~:` or `123:` (read by YAML as a boolean, null or "
        "number) must be quoted. Control characters in messages are shown escaped.",
        f"- Topic ids, consumer groups, `kafka_topic_id`, `topic_id`, `dead_letter_topic` and "
        f"`value_schema_id` follow Kafka's topic name rule: 1 to {TOPIC_NAME_MAX} characters from "
        "`[a-zA-Z0-9._-]`, not `.` or `..`.",
        f"- Pipeline ids (the `Pipelines` keys) and `dataset_id` are safe identifiers: a letter, then "
        f"letters, digits, `_` and `-`, at most {SAFE_ID_MAX} characters.",
        "- `configs:` holds only Kafka topic-level configs with single values. Keys that have their "
        "own property are refused there (refused, not overridden): "
        + ", ".join(f"`{k}` (use `{v}`)" for k, v in FIRST_CLASS.items())
        + ".",
        "- A custom input's `module_path` resolves only inside `pipelines/<id>/`: a dotted module "
        "name (`feeds.my_feed` -> `feeds/my_feed.py` or `feeds/my_feed/__init__.py`) or a relative "
        "`.py` path. `validate` checks, without importing, that the file exists there and defines "
        "`class_name` at its top level, and that `app.py` (if present) parses and defines `build`.",
        "- Value schemas pass the same Avro validity check as the schema registry service (names, "
        "namespaces, unions, fixed sizes, enum symbols, defaults, logical type parameters).",
        "",
    ]


if __name__ == "__main__":
    print(render(), end="")
