"""A small parsed model of an Avro schema, with names resolved the way the specification says.

The compatibility checker needs more than a JSON document: named types referenced by name must
resolve to the one definition (records can be recursive), namespaces must be inherited, and
aliases must be known. :func:`parse_avro` turns a schema (a ``dict``, a ``list`` for a union, or
a ``str`` holding JSON or a type name) into a tree of :class:`AvroType` nodes where every
reference to a named type is the very same node object.

Logical types are kept only as an annotation: like Apache Avro's own compatibility checker,
schema resolution ignores them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradesignals_dagster.kafka.errors import SchemaParseError

PRIMITIVE_TYPES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})
AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What the specification allows for names, namespace parts, field names and enum symbols."""
NO_DEFAULT: Any = object()

SchemaLike = Mapping[str, Any] | Sequence[Any] | str
"""A schema as JSON text, a primitive type name, a decoded JSON object or a union list."""


@dataclass(eq=False)
class AvroType:
    """One node of a parsed schema. ``kind`` is the Avro type name (``record``, ``int``, ...)."""

    kind: str
    logical_type: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict, kw_only=True)
    """``precision`` and ``scale`` as written, for the logical type checks."""


@dataclass(eq=False)
class NamedType(AvroType):
    """A record, enum or fixed: it has a full name and may have aliases."""

    fullname: str = ""
    aliases: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The unqualified name (the part after the last dot)."""
        return self.fullname.rsplit(".", 1)[-1]


@dataclass(eq=False)
class AvroField:
    """A field of a record: its name, type, aliases and whether it has a default value."""

    name: str
    type: AvroType
    has_default: bool
    aliases: tuple[str, ...] = ()
    default: Any = NO_DEFAULT


@dataclass(eq=False)
class RecordType(NamedType):
    """An Avro ``record`` (or ``error``)."""

    fields: list[AvroField] = field(default_factory=list)

    def field_named(self, name: str) -> AvroField | None:
        """The field called ``name`` (its own name, not an alias), or None."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        return None


@dataclass(eq=False)
class EnumType(NamedType):
    """An Avro ``enum``; ``default`` is the symbol readers use for unknown symbols."""

    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class FixedType(NamedType):
    """An Avro ``fixed`` of ``size`` bytes."""

    size: int = 0


@dataclass(eq=False)
class ArrayType(AvroType):
    """An Avro ``array``."""

    items: AvroType = field(default_factory=lambda: AvroType("null"))


@dataclass(eq=False)
class MapType(AvroType):
    """An Avro ``map`` (keys are always strings)."""

    values: AvroType = field(default_factory=lambda: AvroType("null"))


@dataclass(eq=False)
class UnionType(AvroType):
    """An Avro union; branches are in declaration order."""

    branches: list[AvroType] = field(default_factory=list)


def load_schema_json(schema: SchemaLike) -> Any:
    """Decode ``schema`` to JSON values: text is parsed, a bare type name is kept as a string."""
    if isinstance(schema, str):
        text = schema.strip()
        if text[:1] in ("{", "[", '"'):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise SchemaParseError(f"not valid JSON: {exc}") from exc
        return text
    return schema


def parse_avro(schema: SchemaLike) -> AvroType:
    """Parse ``schema`` into :class:`AvroType` nodes, resolving named-type references.

    Raises :class:`SchemaParseError` naming the location of the first problem found.
    """
    return _Parser().parse(load_schema_json(schema), namespace=None, path="")


def _check_name(name: str, what: str, path: str) -> None:
    if not AVRO_NAME.fullmatch(name):
        raise SchemaParseError(f"{what} {name!r} is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]*)", path)


def _check_fullname(fullname: str, path: str) -> None:
    *space, name = fullname.split(".")
    _check_name(name, "the name", path)
    if name in PRIMITIVE_TYPES:
        raise SchemaParseError(f"the name {name!r} is a primitive type name and cannot name a type", path)
    for part in space:
        _check_name(part, "the namespace part", path)


def _qualify(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


class _Parser:
    def __init__(self) -> None:
        self.names: dict[str, NamedType] = {}

    def parse(self, obj: Any, namespace: str | None, path: str) -> AvroType:
        if isinstance(obj, str):
            return self._reference(obj, namespace, path)
        if isinstance(obj, list):
            return self._union(obj, namespace, path)
        if isinstance(obj, Mapping):
            return self._object(obj, namespace, path)
        raise SchemaParseError(f"expected a type name, object or union, got {obj!r}", path)

    def _reference(self, name: str, namespace: str | None, path: str) -> AvroType:
        if name in PRIMITIVE_TYPES:
            return AvroType(name)
        for candidate in (_qualify(name, namespace), name):
            found = self.names.get(candidate)
            if found is not None:
                return found
        raise SchemaParseError(f"unknown type {name!r}", path)

    def _union(self, branches: list[Any], namespace: str | None, path: str) -> UnionType:
        parsed: list[AvroType] = []
        seen: set[str] = set()
        for i, branch in enumerate(branches):
            node = self.parse(branch, namespace, f"{path}/{i}")
            if isinstance(node, UnionType):
                raise SchemaParseError("a union may not directly contain another union", path)
            key = node.fullname if isinstance(node, NamedType) else node.kind
            if key in seen:
                raise SchemaParseError(f"the union has more than one {key!r} branch", path)
            seen.add(key)
            parsed.append(node)
        return UnionType("union", branches=parsed)

    def _object(self, obj: Mapping[str, Any], namespace: str | None, path: str) -> AvroType:
        kind = obj.get("type")
        logical = obj.get("logicalType")
        logical_type = logical if isinstance(logical, str) else None
        if isinstance(kind, (list, Mapping)):
            return self.parse(kind, namespace, f"{path}/type")
        if not isinstance(kind, str):
            raise SchemaParseError("an object schema needs a 'type' attribute", path)
        params = {k: obj[k] for k in ("precision", "scale") if k in obj}
        if kind in PRIMITIVE_TYPES:
            return AvroType(kind, logical_type, params=params)
        if kind == "array":
            if "items" not in obj:
                raise SchemaParseError("an array needs 'items'", path)
            items = self.parse(obj["items"], namespace, f"{path}/items")
            return ArrayType("array", logical_type, items=items)
        if kind == "map":
            if "values" not in obj:
                raise SchemaParseError("a map needs 'values'", path)
            values = self.parse(obj["values"], namespace, f"{path}/values")
            return MapType("map", logical_type, values=values)
        if kind in NAMED_TYPES:
            named = self._named(kind, obj, namespace, path, logical_type)
            named.params = params
            return named
        return self._reference(kind, namespace, f"{path}/type")

    def _named(
        self,
        kind: str,
        obj: Mapping[str, Any],
        namespace: str | None,
        path: str,
        logical_type: str | None,
    ) -> NamedType:
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaParseError(f"a {kind} needs a non-empty 'name'", path)
        own_namespace = obj.get("namespace", namespace)
        if own_namespace is not None and not isinstance(own_namespace, str):
            raise SchemaParseError("'namespace' must be a string", path)
        fullname = _qualify(name, own_namespace)
        _check_fullname(fullname, path)
        space = fullname.rsplit(".", 1)[0] if "." in fullname else None
        if fullname in self.names:
            raise SchemaParseError(f"the name {fullname!r} is defined twice", path)
        raw_aliases = obj.get("aliases", [])
        if not isinstance(raw_aliases, list) or not all(isinstance(a, str) for a in raw_aliases):
            raise SchemaParseError("'aliases' must be a list of strings", path)
        aliases = frozenset(raw_aliases) | {_qualify(a, space) for a in raw_aliases}
        if kind == "enum":
            return self._enum(obj, fullname, aliases, path, logical_type)
        if kind == "fixed":
            size = obj.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise SchemaParseError("a fixed needs a non-negative integer 'size'", path)
            fixed = FixedType("fixed", logical_type, fullname, aliases, size=size)
            self.names[fullname] = fixed
            return fixed
        record = RecordType("record", logical_type, fullname, aliases)
        self.names[fullname] = record  # registered first: fields may refer back to it
        record.fields = self._fields(obj.get("fields"), space, path)
        return record

    def _enum(
        self,
        obj: Mapping[str, Any],
        fullname: str,
        aliases: frozenset[str],
        path: str,
        logical_type: str | None,
    ) -> EnumType:
        symbols = obj.get("symbols")
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise SchemaParseError("an enum needs 'symbols', a list of strings", path)
        if len(set(symbols)) != len(symbols):
            raise SchemaParseError("an enum's symbols must be unique", path)
        for symbol in symbols:
            _check_name(symbol, "the enum symbol", path)
        default = obj.get("default")
        if default is not None and default not in symbols:
            raise SchemaParseError("an enum's 'default' must be one of its symbols", path)
        enum = EnumType("enum", logical_type, fullname, aliases, symbols=tuple(symbols), default=default)
        self.names[fullname] = enum
        return enum

    def _fields(self, fields: Any, namespace: str | None, path: str) -> list[AvroField]:
        if not isinstance(fields, list):
            raise SchemaParseError("a record needs 'fields', a list", path)
        parsed: list[AvroField] = []
        seen: set[str] = set()
        for i, spec in enumerate(fields):
            where = f"{path}/fields/{i}"
            if not isinstance(spec, Mapping):
                raise SchemaParseError("a field must be an object", where)
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise SchemaParseError("a field needs a non-empty 'name'", where)
            _check_name(name, "the field name", where)
            if name in seen:
                raise SchemaParseError(f"the field name {name!r} is used twice", where)
            seen.add(name)
            if "type" not in spec:
                raise SchemaParseError(f"field {name!r} needs a 'type'", where)
            node = self.parse(spec["type"], namespace, f"{where}/type")
            aliases = spec.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise SchemaParseError(f"field {name!r}: 'aliases' must be strings", where)
            default = spec.get("default", NO_DEFAULT)
            parsed.append(AvroField(name, node, "default" in spec, tuple(aliases), default))
        return parsed
