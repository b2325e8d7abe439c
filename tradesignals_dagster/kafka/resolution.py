"""The Avro specification's schema-resolution rules, applied to two parsed schemas.

This is the engine behind :mod:`tradesignals_dagster.kafka.compatibility` (which is the module
to import). It mirrors ``org.apache.avro.SchemaCompatibility`` and Python's
``avro.compatibility``: the same incompatibility types, the same locations (JSON-pointer-like
paths into the reader schema) and the same terse details, plus a plain-English message that
names the field involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradesignals_dagster.kafka.avro_model import (
    ArrayType,
    AvroType,
    EnumType,
    FixedType,
    MapType,
    NamedType,
    RecordType,
    UnionType,
)

# Writer types each reader type accepts besides its own (the specification's promotions).
_PROMOTIONS: dict[str, frozenset[str]] = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "bytes": frozenset({"string"}),
    "string": frozenset({"bytes"}),
}


class IncompatibilityType(StrEnum):
    """Why a reader cannot read a writer's data; the names are Avro's and Confluent's."""

    READER_FIELD_MISSING_DEFAULT_VALUE = "READER_FIELD_MISSING_DEFAULT_VALUE"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    NAME_MISMATCH = "NAME_MISMATCH"
    FIXED_SIZE_MISMATCH = "FIXED_SIZE_MISMATCH"
    MISSING_ENUM_SYMBOLS = "MISSING_ENUM_SYMBOLS"
    MISSING_UNION_BRANCH = "MISSING_UNION_BRANCH"


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader schema cannot read data written with a writer schema.

    ``location`` points into the reader schema the way Avro does (``/fields/3/type``, ``/``
    for the root). ``field`` is the dotted path of record fields leading there (``quote.size``)
    or None at the top level. ``message`` is plain English naming the field; ``detail`` is
    Avro's terse wording (``expected: 8, found: 4``). The versions are set by
    :func:`check_compatibility` and stay None for a bare :func:`can_read`.
    """

    type: IncompatibilityType
    location: str
    field: str | None
    message: str
    detail: str
    reader_version: int | None = None
    writer_version: int | None = None


@dataclass(frozen=True)
class Labels:
    """How messages refer to the two schemas, and which one is newer when that is known."""

    reader: str = "the reader schema"
    writer: str = "the writer schema"
    reader_is_newer: bool | None = None
    reader_version: int | None = None
    writer_version: int | None = None

    @property
    def consequence(self) -> str:
        """The sentence saying who cannot read what."""
        return f"consumers on {self.reader} cannot read records written with {self.writer}"


def check_pair(reader: AvroType, writer: AvroType, labels: Labels) -> list[Incompatibility]:
    """Every incompatibility of ``reader`` reading ``writer``, duplicates removed."""
    found = _Checker(labels).check(reader, writer, (), ())
    unique: dict[tuple[object, ...], Incompatibility] = {}
    for item in found:
        unique.setdefault((item.type, item.location, item.detail), item)
    return list(unique.values())


def _describe(node: AvroType) -> str:
    if isinstance(node, NamedType):
        return f"{node.kind} '{node.fullname}'"
    if isinstance(node, UnionType):
        return "union [" + ", ".join(_describe(b) for b in node.branches) + "]"
    return node.kind


def _pointer(location: tuple[str, ...]) -> str:
    return "/" + "/".join(location)


class _Checker:
    """One reader/writer comparison; named pairs are memoized so recursion terminates."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        # None marks a pair being checked right now: meeting it again is recursion, which
        # Avro treats as compatible (the outer check decides).
        self.memo: dict[tuple[int, int], list[Incompatibility] | None] = {}

    def check(
        self,
        reader: AvroType,
        writer: AvroType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        if not (isinstance(reader, NamedType) and isinstance(writer, NamedType)):
            return self._calculate(reader, writer, location, fields)
        key = (id(reader), id(writer))
        if key in self.memo:
            return self.memo[key] or []
        self.memo[key] = None
        result = self._calculate(reader, writer, location, fields)
        self.memo[key] = result
        return result

    def _issue(
        self,
        kind: IncompatibilityType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
        what: str,
        detail: str,
    ) -> list[Incompatibility]:
        field_path = ".".join(fields) or None
        return [
            Incompatibility(
                type=kind,
                location=_pointer(location),
                field=field_path,
                message=f"{what}; {self.labels.consequence}",
                detail=detail,
                reader_version=self.labels.reader_version,
                writer_version=self.labels.writer_version,
            )
        ]

    def _subject(self, location: tuple[str, ...], fields: tuple[str, ...]) -> str:
        if not fields:
            return "the schema" if not location else f"the schema at {_pointer(location)}"
        name = f"field '{'.'.join(fields)}'"
        if location[-1:] == ("type",):
            return name
        return f"{name} (at {_pointer(location)})"

    def _calculate(
        self,
        reader: AvroType,
        writer: AvroType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        if reader.kind == writer.kind:
            return self._same_kind(reader, writer, location, fields)
        if isinstance(writer, UnionType):
            # The reader must cope with every branch the writer may have used.
            found: list[Incompatibility] = []
            for branch in writer.branches:
                if branch.kind == reader.kind or branch.kind in _PROMOTIONS.get(reader.kind, ()):
                    found += self.check(reader, branch, location, fields)
                else:
                    found += self._type_mismatch(reader, branch, location, fields, writer)
            return found
        if isinstance(reader, UnionType):
            for branch in reader.branches:
                if not self.check(branch, writer, location, fields):
                    return []
            what = (
                f"{self._subject(location, fields)} is a union in {self.labels.reader} with no "
                f"branch that can read the {_describe(writer)} written by {self.labels.writer}"
            )
            detail = f"reader union lacking writer type: {writer.kind.upper()}"
            return self._issue(IncompatibilityType.MISSING_UNION_BRANCH, location, fields, what, detail)
        if writer.kind in _PROMOTIONS.get(reader.kind, frozenset()):
            return []
        return self._type_mismatch(reader, writer, location, fields)

    def _type_mismatch(
        self,
        reader: AvroType,
        writer: AvroType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
        writer_union: UnionType | None = None,
    ) -> list[Incompatibility]:
        rdesc = _describe(reader)
        wdesc = _describe(writer_union or writer)
        labels = self.labels
        subject = self._subject(location, fields)
        if labels.reader_is_newer is None:
            what = f"{subject} is {rdesc} in {labels.reader} but {wdesc} in {labels.writer}"
        elif labels.reader_is_newer:
            what = f"{subject} changed type from {wdesc} ({labels.writer}) to {rdesc}"
        else:
            what = f"{subject} changed type from {rdesc} ({labels.reader}) to {wdesc}"
        if writer_union is None:
            what += f", and {wdesc} cannot be read as {rdesc}"
        else:
            what += f", and its {_describe(writer)} branch cannot be read as {rdesc}"
        detail = f"reader type: {reader.kind} not compatible with writer type: {writer.kind}"
        return self._issue(IncompatibilityType.TYPE_MISMATCH, location, fields, what, detail)

    def _same_kind(
        self,
        reader: AvroType,
        writer: AvroType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        if isinstance(reader, ArrayType) and isinstance(writer, ArrayType):
            return self.check(reader.items, writer.items, (*location, "items"), fields)
        if isinstance(reader, MapType) and isinstance(writer, MapType):
            return self.check(reader.values, writer.values, (*location, "values"), fields)
        if isinstance(reader, UnionType) and isinstance(writer, UnionType):
            return self._unions(reader, writer, location, fields)
        if isinstance(reader, NamedType) and isinstance(writer, NamedType):
            found = self._names(reader, writer, location, fields)
            if isinstance(reader, FixedType) and isinstance(writer, FixedType):
                found += self._fixed_size(reader, writer, location, fields)
            elif isinstance(reader, EnumType) and isinstance(writer, EnumType):
                found += self._enum_symbols(reader, writer, location, fields)
            elif isinstance(reader, RecordType) and isinstance(writer, RecordType):
                found += self._record_fields(reader, writer, location, fields)
            return found
        return []  # the same primitive type

    def _unions(
        self,
        reader: UnionType,
        writer: UnionType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        for i, branch in enumerate(writer.branches):
            where = (*location, str(i))
            if self.check(reader, branch, where, fields):
                what = (
                    f"{self._subject(location, fields)}: {self.labels.writer} may write a "
                    f"{_describe(branch)} there, but the union in {self.labels.reader} has no "
                    "branch that can read it"
                )
                detail = f"reader union lacking writer type: {branch.kind.upper()}"
                found += self._issue(IncompatibilityType.MISSING_UNION_BRANCH, where, fields, what, detail)
        return found

    def _names(
        self,
        reader: NamedType,
        writer: NamedType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        if reader.name == writer.name or writer.fullname in reader.aliases:
            return []
        what = (
            f"{self._subject(location, fields)}: the {reader.kind} is named '{reader.fullname}' "
            f"in {self.labels.reader} but '{writer.fullname}' in {self.labels.writer}, "
            "and no alias matches"
        )
        detail = f"expected: {writer.fullname}"
        return self._issue(IncompatibilityType.NAME_MISMATCH, (*location, "name"), fields, what, detail)

    def _fixed_size(
        self,
        reader: FixedType,
        writer: FixedType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        if reader.size == writer.size:
            return []
        what = (
            f"{self._subject(location, fields)}: fixed '{reader.fullname}' is {reader.size} "
            f"bytes in {self.labels.reader} but {writer.size} bytes in {self.labels.writer}"
        )
        detail = f"expected: {writer.size}, found: {reader.size}"
        return self._issue(IncompatibilityType.FIXED_SIZE_MISMATCH, (*location, "size"), fields, what, detail)

    def _enum_symbols(
        self,
        reader: EnumType,
        writer: EnumType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        missing = [s for s in writer.symbols if s not in reader.symbols]
        if not missing or (reader.default and reader.default in reader.symbols):
            return []
        listed = ", ".join(missing)
        what = (
            f"{self._subject(location, fields)}: enum '{reader.fullname}' in "
            f"{self.labels.reader} lacks symbol(s) {listed} that {self.labels.writer} may "
            "write, and has no default symbol"
        )
        detail = "{" + ", ".join(repr(s) for s in sorted(missing)) + "}"
        return self._issue(
            IncompatibilityType.MISSING_ENUM_SYMBOLS, (*location, "symbols"), fields, what, detail
        )

    def _record_fields(
        self,
        reader: RecordType,
        writer: RecordType,
        location: tuple[str, ...],
        fields: tuple[str, ...],
    ) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        for i, reader_field in enumerate(reader.fields):
            writer_field = writer.field_named(reader_field.name)
            for alias in reader_field.aliases:
                if writer_field is not None:
                    break
                writer_field = writer.field_named(alias)
            path = (*fields, reader_field.name)
            where = (*location, "fields", str(i))
            if writer_field is not None:
                found += self.check(reader_field.type, writer_field.type, (*where, "type"), path)
            elif not reader_field.has_default:
                found += self._missing_default(path, where)
        return found

    def _missing_default(self, path: tuple[str, ...], where: tuple[str, ...]) -> list[Incompatibility]:
        name = ".".join(path)
        labels = self.labels
        if labels.reader_is_newer is None:
            what = f"field '{name}' has no default in {labels.reader} and is missing from {labels.writer}"
        elif labels.reader_is_newer:
            what = f"field '{name}' was added without a default"
        else:
            what = f"field '{name}' was removed, but {labels.reader} has no default for it"
        return self._issue(
            IncompatibilityType.READER_FIELD_MISSING_DEFAULT_VALUE, where, path, what, path[-1]
        )
