"""The one Avro validity check: what ``validate``, the control plane and the schema registry accept.

A schema is valid when fastavro parses it, :func:`~tradesignals_dagster.kafka.avro_model.parse_avro`
models it (names and namespaces per the specification, no primitive type name reused, no
duplicate or nested union branches, fixed sizes >= 0, unique enum symbols, names defined once),
every field default matches its type (a union's default matches its first branch), and the
parameters of the known logical types make sense (a decimal's precision >= 1 and
0 <= scale <= precision, and no more digits than a fixed can hold; date on int, timestamps on
long...). Unknown logical types are allowed, as the specification says.

Having one function means a schema ``validate`` accepts is never refused at registration.
"""

from __future__ import annotations

import math
from typing import Any

import fastavro

from tradesignals_dagster.kafka.avro_model import (
    NO_DEFAULT,
    ArrayType,
    AvroType,
    EnumType,
    FixedType,
    MapType,
    RecordType,
    SchemaLike,
    UnionType,
    load_schema_json,
    parse_avro,
)
from tradesignals_dagster.kafka.errors import SchemaParseError

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
LOGICAL_BASES: dict[str, frozenset[str]] = {
    "decimal": frozenset({"bytes", "fixed"}),
    "uuid": frozenset({"string", "fixed"}),
    "date": frozenset({"int"}),
    "time-millis": frozenset({"int"}),
    "time-micros": frozenset({"long"}),
    "timestamp-millis": frozenset({"long"}),
    "timestamp-micros": frozenset({"long"}),
    "timestamp-nanos": frozenset({"long"}),
    "local-timestamp-millis": frozenset({"long"}),
    "local-timestamp-micros": frozenset({"long"}),
    "local-timestamp-nanos": frozenset({"long"}),
    "duration": frozenset({"fixed"}),
}


def check_avro(schema: SchemaLike) -> AvroType:
    """The parsed schema, or :class:`SchemaParseError` naming the first rule it breaks and where."""
    try:
        decoded = load_schema_json(schema)
        parsed = parse_avro(decoded)
        _Checker().visit(parsed, "")
        fastavro.parse_schema(decoded)  # a last opinion, from the library the serde uses
    except SchemaParseError:
        raise
    except RecursionError:
        raise SchemaParseError("the schema nests too deeply") from None
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise SchemaParseError(str(exc) or type(exc).__name__) from None
    return parsed


def avro_problem(schema: SchemaLike) -> str | None:
    """Why ``schema`` is not a valid Avro schema (see :func:`check_avro`), or ``None``."""
    try:
        check_avro(schema)
    except SchemaParseError as exc:
        return str(exc)
    return None


class _Checker:
    """Walks a parsed schema once (records can be recursive), checking defaults and logical types."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def visit(self, node: AvroType, path: str) -> None:
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        if node.logical_type is not None:
            _check_logical(node, path)
        if isinstance(node, RecordType):
            for i, field in enumerate(node.fields):
                where = f"{path}/fields/{i}"
                if field.default is not NO_DEFAULT:
                    reason = default_problem(field.type, field.default)
                    if reason is not None:
                        raise SchemaParseError(f"field {field.name!r}: default {reason}", where)
                self.visit(field.type, f"{where}/type")
        elif isinstance(node, ArrayType):
            self.visit(node.items, f"{path}/items")
        elif isinstance(node, MapType):
            self.visit(node.values, f"{path}/values")
        elif isinstance(node, UnionType):
            for i, branch in enumerate(node.branches):
                self.visit(branch, f"{path}/{i}")


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _is_byte_string(value: Any) -> bool:
    return isinstance(value, str) and all(ord(c) < 256 for c in value)


_SCALARS: dict[str, Any] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: _is_int(v, INT_RANGE),
    "long": lambda v: _is_int(v, LONG_RANGE),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bytes": _is_byte_string,
    "string": lambda v: isinstance(v, str),
}


def default_problem(node: AvroType, value: Any) -> str | None:
    """Why ``value`` is not a valid JSON default for ``node``, or ``None``."""
    if isinstance(node, UnionType):
        if not node.branches:
            return "belongs to an empty union"
        reason = default_problem(node.branches[0], value)
        return None if reason is None else f"{reason} (a union's default matches its first branch)"
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if node.kind in _SCALARS:
        return None if _SCALARS[node.kind](value) else f"{shown} is not a valid {node.kind}"
    if isinstance(node, FixedType):
        ok = _is_byte_string(value) and len(value) == node.size
        return None if ok else f"{shown} is not {node.size} bytes (a string of {node.size} characters)"
    if isinstance(node, EnumType):
        return None if value in node.symbols else f"{shown} is not a symbol of {node.name}"
    if isinstance(node, ArrayType):
        if not isinstance(value, list):
            return f"{shown} is not an array"
        return next((r for r in (default_problem(node.items, v) for v in value) if r), None)
    if isinstance(node, MapType):
        if not isinstance(value, dict):
            return f"{shown} is not a map"
        return next((r for r in (default_problem(node.values, v) for v in value.values()) if r), None)
    if isinstance(node, RecordType):
        if not isinstance(value, dict):
            return f"{shown} is not a record ({node.name})"
        for field in node.fields:
            if field.name in value:
                reason = default_problem(field.type, value[field.name])
                if reason is not None:
                    return f"{reason} (field {field.name!r})"
            elif not field.has_default:
                return f"lacks field {field.name!r}, which has no default"
    return None


def _check_logical(node: AvroType, path: str) -> None:
    logical = node.logical_type or ""
    bases = LOGICAL_BASES.get(logical)
    if bases is None:
        return  # unknown logical types are ignored, per the specification
    if node.kind not in bases:
        raise SchemaParseError(
            f"logical type {logical} needs {' or '.join(sorted(bases))}, not {node.kind}", path
        )
    size = node.size if isinstance(node, FixedType) else None
    if logical == "duration" and size != 12:
        raise SchemaParseError("logical type duration needs a fixed of size 12", path)
    if logical == "uuid" and size is not None and size != 16:
        raise SchemaParseError("logical type uuid on a fixed needs size 16", path)
    if logical == "decimal":
        _check_decimal(node.params, size, path)


def _check_decimal(params: Any, size: int | None, path: str) -> None:
    precision, scale = params.get("precision"), params.get("scale", 0)
    if not _is_int(precision, (1, INT_RANGE[1])):
        raise SchemaParseError(f"a decimal needs an integer precision >= 1, got {precision!r}", path)
    if not _is_int(scale, (0, precision)):
        raise SchemaParseError(
            f"a decimal's scale must be an integer from 0 to {precision}, got {scale!r}", path
        )
    if size is not None:
        digits = math.floor(math.log10(2 ** (8 * size - 1) - 1)) if size > 0 else 0
        if precision > digits:
            raise SchemaParseError(
                f"a fixed of {size} bytes holds at most {digits} digits, not {precision}", path
            )
