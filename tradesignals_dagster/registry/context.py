"""Bookkeeping shared by the registry's loaders: where each object was written, and the
problems found so far."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tradesignals_dagster.registry.errors import Problem
from tradesignals_dagster.registry.normalise import SPELLINGS, translate
from tradesignals_dagster.registry.yamlsource import PathKey, YamlDoc, format_path


@dataclass
class Located:
    """Where an object of the registry was written: its file and YAML path."""

    doc: YamlDoc
    path: PathKey


def as_spelled(doc: YamlDoc, path: PathKey) -> PathKey:
    """The path as the user spelled its last key (``kafka_topic_id`` for ``topic_id``...)."""
    if not path or path in doc.lines or not isinstance(path[-1], str):
        return path
    for other in SPELLINGS.get(path[-1], ()):
        if (*path[:-1], other) in doc.lines:
            return (*path[:-1], other)
    return path


class LoadContext:
    """Problems found so far and where each topic, pipeline and schema was written."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.places: dict[str, Located] = {}
        self.declared_pipelines: set[str] = set()

    def add(self, doc: YamlDoc | str, path: PathKey, message: str, severity: str = "error") -> None:
        if isinstance(doc, YamlDoc):
            path = as_spelled(doc, path)
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


def kind_of(value: Any) -> str:
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


def value_at(loc: Located) -> Any:
    node: Any = loc.doc.data
    for part in loc.path:
        node = node[part]
    return node


def validate_model(
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
