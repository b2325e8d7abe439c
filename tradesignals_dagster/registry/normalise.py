"""The seed's alternative spellings, and pydantic errors turned into sentences with locations."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from tradesignals_dagster.registry.yamlsource import PathKey

# canonical key -> spellings the seed also uses, per kind of object
Aliases = dict[str, tuple[str, ...]]
TOPIC_ALIASES: Aliases = {"id": ("topic_id",)}
INPUT_ALIASES: Aliases = {"kafka_topic_id": ("topic_id",), "group_id": ("consumer_group_id",)}
OUTPUT_ALIASES: Aliases = {"topic_id": ("kafka_topic_id",)}
PIPELINE_ALIASES: Aliases = {"name": ("id",)}
HIDDEN_FIELDS = {"key"}
MODEL_ALIASES = {
    "StreamingTopic": TOPIC_ALIASES,
    "StreamingPipelineInput": INPUT_ALIASES,
    "StreamingPipelineOutput": OUTPUT_ALIASES,
    "StreamingPipeline": PIPELINE_ALIASES,
}
SPELLINGS: dict[str, tuple[str, ...]] = {}
for _aliases in MODEL_ALIASES.values():
    for _canonical, _others in _aliases.items():
        SPELLINGS[_canonical] = tuple(dict.fromkeys(SPELLINGS.get(_canonical, ()) + _others))

Report = Callable[[PathKey, str], None]


def normalise(raw: dict[str, Any], aliases: dict[str, tuple[str, ...]], report: Report) -> dict[str, Any]:
    """Rename alternative spellings to the canonical key; both spellings at once is an error."""
    out = dict(raw)
    for canonical, others in aliases.items():
        for other in others:
            if other not in out:
                continue
            if canonical in out and out[canonical] != out[other]:
                report(
                    (other,),
                    f"both '{canonical}' and '{other}' are given and differ "
                    f"({out[canonical]!r} vs {out[other]!r}); they mean the same thing, keep one",
                )
            out.setdefault(canonical, out[other])
            del out[other]
    return out


def known_keys(model: type[BaseModel], aliases: dict[str, tuple[str, ...]]) -> list[str]:
    """Every key a user may write for ``model``: its fields and their alternative spellings."""
    keys = [k for k in model.model_fields if k not in HIDDEN_FIELDS]
    for others in aliases.values():
        keys.extend(others)
    return keys


def suggest(word: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return ""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _locate(raw: Any, loc: tuple[Any, ...]) -> tuple[PathKey, bool]:
    """Follow a pydantic location through the raw data, dropping pydantic's union branch names.

    Returns the path and whether it was followed to the end.
    """
    path: list[str | int] = []
    node = raw
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1 and isinstance(part, str):
            path.append(part)  # a missing key
            return tuple(path), True
        else:
            return tuple(path), False
    return tuple(path), True


def translate(
    exc: ValidationError,
    raw: dict[str, Any],
    model: type[BaseModel],
    aliases: dict[str, tuple[str, ...]],
    spelled: dict[str, str],
    report: Report,
) -> None:
    """Report each error of ``exc`` (raised validating ``raw``) with its YAML path and reason.

    ``spelled`` maps a canonical top-level key back to the spelling the user wrote.
    """
    seen: set[PathKey] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, complete = _locate(raw, loc)
        if path in seen:
            continue
        seen.add(path)
        if path and isinstance(path[0], str) and path[0] in spelled:
            path = (spelled[path[0]], *path[1:])
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else "?"
            parent = _submodel(model, loc[:-1])
            candidates = known_keys(parent, MODEL_ALIASES.get(parent.__name__, {}))
            message = f"unknown key '{key}'{suggest(key, candidates)}"
        elif kind == "missing":
            message = f"required key '{path[-1] if path else loc[-1]}' is missing"
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}, got {_describe(value)}"
        elif kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
            op = {
                "greater_than_equal": ">=",
                "greater_than": ">",
                "less_than_equal": "<=",
                "less_than": "<",
            }[kind]
            bound = next(iter(err.get("ctx", {}).values()), "?")
            message = f"must be {op} {bound}, got {_describe(value)}"
        elif kind == "value_error":
            message = str(err.get("ctx", {}).get("error", err["msg"]))
            if not isinstance(value, dict | list):
                message += f", got {_describe(value)}"
        elif not complete:
            message = f"{_type_phrase(model, loc)}, got {_describe(_value_at(raw, path))}"
        else:
            message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_describe(value)}"
        report(path, message)


def _value_at(raw: Any, path: PathKey) -> Any:
    node = raw
    for part in path:
        node = node[part]
    return node


def _type_phrase(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    sub = _submodel(model, loc[:-1]) if len(loc) > 1 else model
    field = sub.model_fields.get(str(loc[-1])) if loc else None
    if field is not None and field.annotation is not None:
        return f"has the wrong type (expected {_annotation_text(field.annotation)})"
    return "has the wrong type"


def _annotation_text(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace("list[Any]", "a list").replace("dict[str, Any]", "a mapping")


def _submodel(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The nested model class a location points into, for unknown-key suggestions."""
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            break
        nested = _model_in(field.annotation)
        if nested is None:
            break
        current = nested
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
