"""From the registry's schema notation to real Avro, and the checks Avro itself would make.

The seed writes ``logical_type``/``precision``/``scale`` on a field; Avro wants them on the
field's type (``{"type": "bytes", "logicalType": "decimal", ...}``). ``min_length`` and
``max_length`` are not Avro: they are kept as validation rules (see :func:`length_rules`) and
stored in the Avro field as extra attributes, which Avro tools ignore.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import fastavro
from fastavro.validation import validate as avro_validate

from tradesignals_dagster.kafka.avro_validity import avro_problem
from tradesignals_dagster.registry.models import AvroField, ValueSchema
from tradesignals_dagster.registry.normalise import suggest

AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
LOGICAL_BASE = {
    "decimal": {"bytes", "fixed"},
    "uuid": {"string"},
    "date": {"int"},
    "time-millis": {"int"},
    "time-micros": {"long"},
    "timestamp-millis": {"long"},
    "timestamp-micros": {"long"},
    "local-timestamp-millis": {"long"},
    "local-timestamp-micros": {"long"},
}

# (relative YAML path, message, severity)
Report = Callable[[tuple[str | int, ...], str, str], None]


def to_avro(schema: ValueSchema, report: Report) -> dict[str, Any]:
    """Translate ``schema`` to Avro JSON, reporting every problem through ``report``."""
    if not AVRO_NAME.match(schema.name):
        report(("name",), f"'{schema.name}' is not a valid Avro name ({AVRO_NAME.pattern})", "error")
    if schema.namespace is not None and not all(
        AVRO_NAME.match(part) for part in schema.namespace.split(".")
    ):
        report(("namespace",), f"'{schema.namespace}' is not a valid Avro namespace", "error")
    if not schema.fields:
        report(
            ("fields",),
            f"record '{schema.name}' has no fields; a value schema needs at least one field",
            "error",
        )
    out: dict[str, Any] = {"type": "record", "name": schema.name}
    if schema.namespace:
        out["namespace"] = schema.namespace
    if schema.doc:
        out["doc"] = schema.doc
    if schema.aliases:
        out["aliases"] = list(schema.aliases)
    seen: dict[str, int] = {}
    fields = []
    named = _defined_names([f.type for f in schema.fields], schema.namespace)
    named.add(schema.name)
    if schema.namespace:
        named.add(f"{schema.namespace}.{schema.name}")
    for i, field in enumerate(schema.fields):
        if field.name in seen:
            report(
                ("fields", i, "name"),
                f"field name '{field.name}' is used twice (also fields[{seen[field.name]}])",
                "error",
            )
        seen.setdefault(field.name, i)
        fields.append(_field(field, ("fields", i), report, named))
    out["fields"] = fields
    return out


def _field(field: AvroField, at: tuple[str | int, ...], report: Report, named: set[str]) -> dict[str, Any]:
    if not AVRO_NAME.match(field.name):
        report((*at, "name"), f"'{field.name}' is not a valid Avro field name", "error")
    ftype: Any = field.type
    for ref in _type_refs(ftype):
        if ref not in PRIMITIVES and ref not in named:
            hint = suggest(ref, sorted(PRIMITIVES | named))
            report((*at, "type"), f"unknown Avro type '{ref}'{hint}", "error")
    if field.logical_type is not None:
        ftype = _logical(field, ftype, at, report)
    elif field.precision is not None or field.scale is not None:
        report((*at, "precision"), "precision/scale need logical_type: decimal", "error")
    if field.min_length is not None or field.max_length is not None:
        base = ftype if isinstance(ftype, str) else None
        if base not in {"string", "bytes"}:
            report((*at, "min_length"), "min_length/max_length apply to string or bytes", "error")
        if (
            field.min_length is not None
            and field.max_length is not None
            and field.min_length > field.max_length
        ):
            report(
                (*at, "max_length"),
                f"max_length {field.max_length} is below min_length {field.min_length}",
                "error",
            )
    out: dict[str, Any] = {"name": field.name, "type": ftype}
    if field.doc:
        out["doc"] = field.doc
    if field.aliases:
        out["aliases"] = list(field.aliases)
    if field.order:
        out["order"] = field.order
    if field.min_length is not None:
        out["min_length"] = field.min_length
    if field.max_length is not None:
        out["max_length"] = field.max_length
    if field.has_default:
        out["default"] = field.default
        _check_default(field, ftype, at, report)
    return out


def _logical(field: AvroField, ftype: Any, at: tuple[str | int, ...], report: Report) -> dict[str, Any] | Any:
    lt = field.logical_type or ""
    base = ftype if isinstance(ftype, str) else None
    allowed = LOGICAL_BASE.get(lt)
    if allowed is None:
        report((*at, "logical_type"), f"unknown logical type '{lt}'", "warning")
        return {"type": ftype, "logicalType": lt}
    if base not in allowed:
        report(
            (*at, "logical_type"),
            f"logical type {lt} needs type {' or '.join(sorted(allowed))}, got {ftype!r}",
            "error",
        )
    out: dict[str, Any] = {"type": ftype, "logicalType": lt}
    if lt != "decimal":
        return out
    precision, scale = field.precision, field.scale if field.scale is not None else 0
    if precision is None or precision < 1:
        report((*at, "precision"), "a decimal needs precision >= 1", "error")
        return out
    if scale < 0 or scale > precision:
        report(
            (*at, "scale"),
            f"decimal scale must be between 0 and precision ({precision}), got {scale}",
            "error",
        )
    elif scale == precision:
        report(
            (*at, "scale"),
            f"decimal({precision},{scale}) has no integer digits: it only holds values "
            f"with absolute value below 1",
            "warning",
        )
    out["precision"] = precision
    out["scale"] = scale
    return out


def _check_default(field: AvroField, ftype: Any, at: tuple[str | int, ...], report: Report) -> None:
    target = ftype[0] if isinstance(ftype, list) and ftype else ftype
    if isinstance(target, dict) and target.get("logicalType") == "decimal":
        return
    try:
        ok = avro_validate(field.default, fastavro.parse_schema(target), raise_errors=False)
    except Exception:  # an invalid type is reported elsewhere
        return
    if not ok:
        report(
            (*at, "default"),
            f"default {field.default!r} is not a valid {_type_name(target)}"
            + (" (a union's default must match its first branch)" if isinstance(ftype, list) else ""),
            "error",
        )


def _type_name(t: Any) -> str:
    return t if isinstance(t, str) else str(t.get("type", t)) if isinstance(t, dict) else str(t)


def _type_refs(ftype: Any) -> list[str]:
    """Type names a field's type refers to by name (not the ones it defines)."""
    if isinstance(ftype, str):
        return [ftype]
    if isinstance(ftype, list):
        return [ref for branch in ftype for ref in _type_refs(branch)]
    if isinstance(ftype, dict):
        kind = ftype.get("type")
        if kind == "array":
            return _type_refs(ftype.get("items"))
        if kind == "map":
            return _type_refs(ftype.get("values"))
        if kind == "record":
            return [
                r for f in ftype.get("fields", []) if isinstance(f, dict) for r in _type_refs(f.get("type"))
            ]
        if kind in ("enum", "fixed"):
            return []
        return _type_refs(kind)
    return []


def _defined_names(types: list[Any], namespace: str | None) -> set[str]:
    """Named types (record, enum, fixed) defined anywhere inside ``types``."""
    out: set[str] = set()
    stack = list(types)
    while stack:
        t = stack.pop()
        if isinstance(t, list):
            stack.extend(t)
        elif isinstance(t, dict):
            if t.get("type") in ("record", "enum", "fixed") and isinstance(t.get("name"), str):
                ns = t.get("namespace", namespace)
                out.add(t["name"])
                if ns:
                    out.add(f"{ns}.{t['name']}")
            stack.extend(f.get("type") for f in t.get("fields", []) if isinstance(f, dict))
            stack.extend(t[k] for k in ("items", "values") if k in t)
            if isinstance(t.get("type"), dict | list):
                stack.append(t["type"])
    return out


def check_parses(schema: dict[str, Any]) -> str | None:
    """The project's one Avro validity check on the final schema (the schema registry service
    runs the same one); ``None`` when it accepts it, else its reason."""
    reason = avro_problem(schema)
    return None if reason is None else reason.removeprefix("invalid Avro schema").lstrip(": ")


def length_rules(schema: dict[str, Any]) -> dict[str, tuple[int | None, int | None]]:
    """Field name -> (min_length, max_length) for fields that declare length bounds."""
    return {
        f["name"]: (f.get("min_length"), f.get("max_length"))
        for f in schema.get("fields", [])
        if "min_length" in f or "max_length" in f
    }
