"""Render the registry reference (docs/registry.md) from the models, so it cannot drift."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

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
from tradesignals_dagster.registry.normalise import MODEL_ALIASES

SECTIONS: list[tuple[str, type[BaseModel], set[str]]] = [
    ("`StreamingApplication`", StreamingApplication, {"topics", "pipelines", "schemas", "subjects"}),
    ("Topic (`Topics.<id>` or an item of `topics.yaml`)", StreamingTopic, set()),
    ("Value schema (`value_schema`, `Schemas.<id>`, `schemas/<id>.yaml`)", ValueSchema, set()),
    ("Schema field (`fields[]`)", AvroField, set()),
    ("Pipeline (`Pipelines.<id>`)", StreamingPipeline, {"key"}),
    ("Pipeline input (`input`)", StreamingPipelineInput, set()),
    ("Pipeline output (`output`)", StreamingPipelineOutput, set()),
    ("Docker (`docker`)", DockerConfig, set()),
]


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is UNSET:
        return "none"
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
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
