"""Records of a topic's Avro schema as the runtime handles them: coercion, validation, identity.

In the runtime a record is a ``dict`` of Python values in the shape :class:`~tradesignals_dagster
.kafka.serde.AvroSerde` reads and writes with ``decimals="scaled_int"``: decimals are **scaled
ints** (``Decimal("1.2345")`` at scale 4 is ``12345``), timestamps are epoch ``int`` values.

* :meth:`RecordSchema.coerce` turns a loosely typed row (JSON from a feed, a CSV line, a Parquet
  row) into such a record, or raises :class:`RecordError` saying which field is wrong.
* :meth:`RecordSchema.violations` checks the registry's validation rules that Avro cannot hold
  (``min_length``/``max_length``, kept as extra field attributes in the Avro JSON).
* :func:`identity_function` gives every output record a deterministic identity (the ``ts-id``
  header) so a downstream store can drop duplicates produced around a crash.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradesignals_dagster.streaming.errors import RecordError

_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_PRIMITIVE_KINDS = frozenset({"string", "bytes", "int", "long", "float", "double", "boolean"})
_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)


@dataclass(frozen=True)
class FieldSpec:
    """What the runtime needs to know about one top-level field of a record schema."""

    name: str
    kind: str
    """One of string, bytes, int, long, float, double, boolean, decimal, timestamp-millis,
    timestamp-micros, other (nested types are passed through as given)."""
    nullable: bool = False
    has_default: bool = False
    default: Any = None
    precision: int = 0
    scale: int = 0
    min_length: int | None = None
    max_length: int | None = None


def _field_spec(field: Mapping[str, Any]) -> FieldSpec:
    ftype = field["type"]
    branches = ftype if isinstance(ftype, list) else [ftype]
    nullable = "null" in branches
    rest = [b for b in branches if b != "null"]
    base: Any = rest[0] if len(rest) == 1 else None
    kind, precision, scale = "other", 0, 0
    if isinstance(base, str):
        kind = base if base in _PRIMITIVE_KINDS else "other"
    elif isinstance(base, Mapping):
        logical = base.get("logicalType")
        if logical == "decimal" and base.get("type") == "bytes":
            kind, precision, scale = "decimal", int(base["precision"]), int(base.get("scale", 0))
        elif logical in ("timestamp-millis", "local-timestamp-millis"):
            kind = "timestamp-millis"
        elif logical in ("timestamp-micros", "local-timestamp-micros"):
            kind = "timestamp-micros"
        elif base.get("type") in _PRIMITIVE_KINDS and logical is None:
            kind = str(base["type"])
    default = field.get("default")
    if kind == "decimal" and isinstance(default, str):
        default = int.from_bytes(default.encode("latin-1"), "big", signed=True) if default else 0
    return FieldSpec(
        name=str(field["name"]),
        kind=kind,
        nullable=nullable,
        has_default="default" in field,
        default=default,
        precision=precision,
        scale=scale,
        min_length=field.get("min_length"),
        max_length=field.get("max_length"),
    )


class RecordSchema:
    """The runtime's view of an Avro record schema (top-level fields only)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        if not isinstance(schema, Mapping) or schema.get("type") != "record":
            raise RecordError("a record schema (Avro JSON with type 'record') is required")
        self.schema = schema
        self.name = str(schema.get("name"))
        self.fields: list[FieldSpec] = [_field_spec(f) for f in schema.get("fields", [])]
        self.by_name = {f.name: f for f in self.fields}
        self._converters = [(f, _converter(f)) for f in self.fields]
        self._length_rules = [
            (f.name, f.min_length if f.min_length is not None else 0, f.max_length)
            for f in self.fields
            if f.min_length is not None or f.max_length is not None
        ]

    @property
    def field_names(self) -> list[str]:
        """Field names in schema order."""
        return [f.name for f in self.fields]

    def decimal_scale(self, name: str) -> int | None:
        """Scale of decimal field ``name``, or None if it is not a decimal field."""
        spec = self.by_name.get(name)
        return spec.scale if spec is not None and spec.kind == "decimal" else None

    # -- coercion ---------------------------------------------------------------------------------

    def coerce(self, raw: Mapping[str, Any], field_map: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``raw`` as a record of this schema (decimals as scaled ints); extra keys are dropped.

        ``field_map`` renames incoming keys first (``{"px": "price"}``). Missing fields take
        their schema default; a missing field without default, or a value that cannot be
        converted exactly, raises :class:`RecordError`.
        """
        if not isinstance(raw, Mapping):
            raise RecordError(f"expected a JSON object for a {self.name} record, got {type(raw).__name__}")
        if field_map:
            raw = {field_map.get(k, k): v for k, v in raw.items()}
        out: dict[str, Any] = {}
        for spec, convert in self._converters:
            value = raw.get(spec.name, _MISSING)
            if value is _MISSING:
                if not spec.has_default:
                    raise RecordError(f"field {spec.name!r} is missing")
                out[spec.name] = spec.default
                continue
            if value == "" and spec.kind not in ("string", "bytes"):
                # an empty cell (CSV) means "no value": null if allowed, else the default
                if spec.nullable:
                    value = None
                elif spec.has_default:
                    out[spec.name] = spec.default
                    continue
            if value is None:
                if not spec.nullable:
                    raise RecordError(f"field {spec.name!r} is null but the schema does not allow null")
                out[spec.name] = None
                continue
            try:
                out[spec.name] = convert(value)
            except RecordError as exc:
                raise RecordError(f"field {spec.name!r}: {exc}") from None
            except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
                raise RecordError(f"field {spec.name!r}: cannot convert {value!r} ({exc})") from None
        return out

    # -- validation -------------------------------------------------------------------------------

    def violations(self, record: Mapping[str, Any]) -> str | None:
        """Why ``record`` breaks a ``min_length``/``max_length`` rule, or None when it is valid."""
        for name, lo, hi in self._length_rules:
            value = record.get(name)
            if value is None:
                continue
            n = len(value)
            if n < lo:
                return f"field {name!r} is {n} long, shorter than min_length {lo}"
            if hi is not None and n > hi:
                return f"field {name!r} is {n} long, longer than max_length {hi}"
        return None

    def batch_violations(self, records: Sequence[Mapping[str, Any] | None]) -> list[tuple[int, str]]:
        """``(index, reason)`` of every record of ``records`` that breaks a length rule.

        The common all-valid batch costs one length per rule and record, with no per-record
        function call; only a batch with a violation is looked at record by record.
        """
        if not self._length_rules:
            return []
        for name, lo, hi in self._length_rules:
            lengths = [len(r[name]) for r in records if r is not None and r.get(name) is not None]
            if lengths and (min(lengths) < lo or (hi is not None and max(lengths) > hi)):
                break
        else:
            return []
        out = []
        for i, rec in enumerate(records):
            if rec is not None:
                msg = self.violations(rec)
                if msg is not None:
                    out.append((i, msg))
        return out

    @property
    def has_rules(self) -> bool:
        """Whether any field carries a validation rule."""
        return bool(self._length_rules)

    # -- presentation -----------------------------------------------------------------------------

    def to_plain(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` with scaled-int decimals turned into :class:`decimal.Decimal` (for files)."""
        out = dict(record)
        for spec in self.fields:
            if spec.kind == "decimal":
                value = out.get(spec.name)
                if isinstance(value, int):
                    out[spec.name] = decimal.Decimal(value).scaleb(-spec.scale)
        return out


class _Missing:
    pass


_MISSING: Any = _Missing()


def _converter(spec: FieldSpec) -> Callable[[Any], Any]:
    kind = spec.kind
    if kind in _INT_RANGE:
        lo, hi = _INT_RANGE[kind]
        return lambda v: _check_range(to_int(v), lo, hi)
    if kind in ("float", "double"):
        return to_float
    if kind == "string":
        return to_str
    if kind == "boolean":
        return to_bool
    if kind == "bytes":
        return to_bytes
    if kind == "decimal":
        return lambda v: to_scaled(v, spec.scale, spec.precision)
    if kind == "timestamp-millis":
        return lambda v: to_epoch(v, 1000)
    if kind == "timestamp-micros":
        return lambda v: to_epoch(v, 1_000_000)
    return lambda v: v


def _check_range(value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise RecordError(f"{value} is outside the Avro range [{lo}, {hi}]")
    return value


def to_int(value: Any) -> int:
    """An exact int from an int, an integral float/Decimal or a numeric string."""
    if value.__class__ is int:
        return int(value)
    if isinstance(value, bool):
        raise RecordError(f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise RecordError(f"{value!r} is not an integer")
        return int(value)
    if isinstance(value, decimal.Decimal):
        if value != value.to_integral_value():
            raise RecordError(f"{value} is not an integer")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return to_int(decimal.Decimal(text))
    if isinstance(value, int):
        return int(value)
    raise RecordError(f"expected an integer, got {type(value).__name__}")


def to_float(value: Any) -> float:
    """A float from a number or numeric string (not a bool)."""
    if isinstance(value, bool):
        raise RecordError(f"expected a number, got {value!r}")
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise RecordError(f"expected a number, got {type(value).__name__}")


def to_str(value: Any) -> str:
    """A string; numbers are written in their shortest form, other types are refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise RecordError(f"expected a string, got {type(value).__name__}")
    return str(value)


def to_bool(value: Any) -> bool:
    """A bool from a bool, 0/1 or the words true/false/yes/no."""
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise RecordError(f"expected a boolean, got {value!r}")


_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def to_bytes(value: Any) -> bytes:
    """Bytes from bytes or a (UTF-8) string."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise RecordError(f"expected bytes, got {type(value).__name__}")


def to_scaled(value: Any, scale: int, precision: int) -> int:
    """The scaled int of a decimal value at ``scale``, refusing lost digits or overflow.

    Floats are read through their shortest repr (``0.1`` is ``Decimal("0.1")``), the value a
    JSON feed meant; ints are whole units.
    """
    if isinstance(value, bool):
        raise RecordError(f"expected a decimal, got {value!r}")
    if value.__class__ is int:
        scaled = int(value) * 10**scale
    else:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise RecordError(f"{value!r} is not a finite number")
            dec = decimal.Decimal(repr(value))
        elif isinstance(value, decimal.Decimal):
            dec = value
        elif isinstance(value, str):
            try:
                dec = decimal.Decimal(value.strip())
            except decimal.InvalidOperation:
                raise RecordError(f"{value!r} is not a decimal number") from None
        else:
            raise RecordError(f"expected a decimal, got {type(value).__name__}")
        if not dec.is_finite():
            raise RecordError(f"{value!r} is not a finite number")
        shifted = dec.scaleb(scale, _EXACT)
        if shifted != shifted.to_integral_value():
            raise RecordError(f"{value} has more than {scale} decimal places")
        scaled = int(shifted)
    if abs(scaled) >= 10**precision:
        raise RecordError(f"{value} has more than {precision} digits")
    return scaled


_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def to_epoch(value: Any, per_second: int) -> int:
    """Epoch time in 1/``per_second`` units from an int, an ISO 8601 string or a datetime.

    Naive datetimes and strings without an offset are read as UTC.
    """
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=_UTC)
        delta = moment - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * per_second + delta.microseconds * per_second // 10**6
    if isinstance(value, str):
        text = value.strip()
        try:
            return to_int(text)
        except (RecordError, ValueError, decimal.InvalidOperation):
            pass
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise RecordError(f"{value!r} is neither an epoch number nor an ISO 8601 time") from None
        return to_epoch(parsed, per_second)
    return to_int(value)


# -- identity -------------------------------------------------------------------------------------

IdentityFunction = Callable[[Mapping[str, Any]], str]


def identity_function(
    field_names: Sequence[str],
    custom: IdentityFunction | None = None,
    declared: Sequence[str] | None = None,
) -> IdentityFunction | None:
    """How to name an output record deterministically (the ``ts-id`` header).

    ``custom`` (a processor's ``record_id``) wins; then ``declared`` (``runtime.
    identity_fields``: the values of those fields joined by ``:``; a field the output lacks is
    a :class:`ValueError`). Without either, the legacy guess: ``symbol:sequence`` for records
    with both (bars), else ``trade_id``, else ``id``. ``None`` means: use a hash of the encoded
    value, which is as deterministic as the record itself.
    """
    if custom is not None:
        return custom
    if declared:
        missing = [f for f in declared if f not in field_names]
        if missing:
            raise ValueError(
                f"identity_fields: the output schema has no field {', '.join(map(repr, missing))}"
            )
        fields = tuple(declared)
        if len(fields) == 1:
            only = fields[0]
            return lambda r: str(r[only])
        return lambda r: ":".join([str(r[f]) for f in fields])
    names = set(field_names)
    if {"symbol", "sequence"} <= names:
        return lambda r: f"{r['symbol']}:{r['sequence']}"
    for name in ("trade_id", "id", "event_id"):
        if name in names:
            key = name
            return lambda r: str(r[key])
    return None
