"""Our Avro compatibility checker against Apache Avro's own test-suite and checker.

Three layers:

1. Every (reader, writer) pair that Apache Avro's ``avro/test/test_compatibility.py`` checks,
   with the verdict, messages and locations that suite asserts. The suite keeps its case tables
   inside test methods, so they are harvested by running each of its test methods once with a
   recording checker (see ``_harvest_avro_cases``): the pairs, the expectations and the avro
   fixtures are all Avro's, nothing is copied by hand.
2. A differential corpus: every ordered pair of ~30 handwritten schemas covering each rule
   (promotions, records, aliases, enums and enum defaults, fixed, arrays, maps, unions on
   both sides, named references, recursion, namespaces, logical types), with
   ``avro.compatibility.ReaderWriterCompatibilityChecker`` as the oracle.
3. Hand-worked cases asserting the plain-English messages name the field, plus Confluent's
   compatibility levels.
"""

from __future__ import annotations

import itertools
import json
import unittest.mock
from dataclasses import dataclass, field
from typing import Any

import avro.schema
import avro.test.test_compatibility as avro_suite
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from tradesignals_dagster.kafka.compatibility import (
    CompatibilityLevel,
    IncompatibilityType,
    can_read,
    check_compatibility,
    parse_compatibility_level,
)
from tradesignals_dagster.kafka.errors import InvalidCompatibilityLevelError, SchemaParseError

# --------------------------------------------------------------------------------------------
# 1. Apache Avro's own cases


@dataclass
class AvroCase:
    """One get_compatibility call made by Avro's suite, with what that suite asserted."""

    id: str
    reader: Any
    writer: Any
    result: Any
    expected: SchemaCompatibilityType | None = None
    messages: set[str] = field(default_factory=set)
    locations: set[str] = field(default_factory=set)
    exact: bool = False  # the suite asserted the full sets, not membership
    via_are_compatible: bool = False


_CALLS: list[AvroCase] = []


class _RecordingChecker(ReaderWriterCompatibilityChecker):
    """Avro's checker, remembering each top-level call (not its recursive ones)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def get_compatibility(
        self, reader: Any, writer: Any, reference_token: str = "/", location: Any = None
    ) -> Any:
        self._depth += 1
        try:
            result = super().get_compatibility(reader, writer, reference_token, location)
        finally:
            self._depth -= 1
        if self._depth == 0:
            _CALLS.append(AvroCase("", reader, writer, result))
        return result


class _Harvester(avro_suite.TestCompatibility):
    """Avro's TestCompatibility with assertions that also record what they assert."""

    __test__ = False  # run by _harvest_avro_cases, not collected by pytest

    def are_compatible(self, reader: Any, writer: Any) -> bool:
        verdict = super().are_compatible(reader, writer)
        _CALLS[-1].via_are_compatible = True
        return verdict

    def assertTrue(self, expr: Any, msg: Any = None) -> None:
        if _CALLS and _CALLS[-1].via_are_compatible and _CALLS[-1].expected is None:
            _CALLS[-1].expected = SchemaCompatibilityType.compatible
        super().assertTrue(expr, msg)

    def assertFalse(self, expr: Any, msg: Any = None) -> None:
        if _CALLS and _CALLS[-1].via_are_compatible and _CALLS[-1].expected is None:
            _CALLS[-1].expected = SchemaCompatibilityType.incompatible
        super().assertFalse(expr, msg)

    def assertIs(self, first: Any, second: Any, msg: Any = None) -> None:
        if isinstance(second, SchemaCompatibilityType) and _CALLS:
            _CALLS[-1].expected = second
        super().assertIs(first, second, msg)

    def assertIn(self, member: Any, container: Any, msg: Any = None) -> None:
        if _CALLS and container is _CALLS[-1].result.messages:
            _CALLS[-1].messages.add(member)
        elif _CALLS and container is _CALLS[-1].result.locations:
            _CALLS[-1].locations.add(member)
        super().assertIn(member, container, msg)

    def assertEqual(self, first: Any, second: Any, msg: Any = None) -> None:
        if _CALLS:
            last = _CALLS[-1]
            if first is last.result.messages:
                last.messages, last.exact = set(second), True
            elif first is last.result.locations:
                last.locations, last.exact = set(second), True
            elif isinstance(first, str) and second == "".join(last.result.messages):
                last.messages, last.exact = {first}, True
            elif isinstance(first, str) and second == "".join(last.result.locations):
                last.locations, last.exact = {first}, True
        super().assertEqual(first, second, msg)


def _harvest_avro_cases() -> list[AvroCase]:
    """Run each of Avro's compatibility tests once, recording every pair it checks."""
    cases: list[AvroCase] = []
    with unittest.mock.patch.object(avro_suite, "ReaderWriterCompatibilityChecker", _RecordingChecker):
        for name in sorted(n for n in dir(_Harvester) if n.startswith("test_")):
            _CALLS.clear()
            getattr(_Harvester(name), name)()
            for i, call in enumerate(_CALLS):
                call.id = f"{name.removeprefix('test_')}#{i}"
                cases.append(call)
    _CALLS.clear()
    return cases


AVRO_CASES = _harvest_avro_cases()


def _json(schema: avro.schema.Schema) -> Any:
    return schema.to_json()


def test_avro_suite_was_harvested() -> None:
    # Avro 1.12's suite checks well over a hundred pairs; each must carry an expectation.
    assert len(AVRO_CASES) > 120
    assert [c.id for c in AVRO_CASES if c.expected is None] == []
    kinds = {c.expected for c in AVRO_CASES}
    assert kinds == {SchemaCompatibilityType.compatible, SchemaCompatibilityType.incompatible}


@pytest.mark.parametrize("case", AVRO_CASES, ids=[c.id for c in AVRO_CASES])
def test_avro_suite_case(case: AvroCase) -> None:
    found = can_read(_json(case.reader), _json(case.writer))
    expected_compatible = case.expected is SchemaCompatibilityType.compatible
    assert (found == []) == expected_compatible, [i.message for i in found]
    details = {i.detail for i in found}
    locations = {i.location for i in found}
    if case.exact:
        if case.messages:
            assert details == case.messages
        if case.locations:
            assert locations == case.locations
    else:
        assert case.messages <= details
        assert case.locations <= locations


# --------------------------------------------------------------------------------------------
# 2. Differential corpus, with avro.compatibility as the oracle


def _record(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def _f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


_ENUM_ABC = {"type": "enum", "name": "Side", "symbols": ["A", "B", "C"]}
_LINKED_INT = _record("Node", _f("value", "int"), _f("next", ["null", "Node"], default=None))
_LINKED_LONG = _record("Node", _f("value", "long"), _f("next", ["null", "Node"], default=None))
_LINKED_STR = _record("Node", _f("value", "string"), _f("next", ["null", "Node"], default=None))
_TREE = _record("Tree", _f("label", "string"), _f("children", {"type": "array", "items": "Tree"}))

CORPUS: dict[str, Any] = {
    "null": "null",
    "boolean": "boolean",
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "date": {"type": "int", "logicalType": "date"},
    "decimal_4_2": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
    "decimal_9_3": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3},
    "array_int": {"type": "array", "items": "int"},
    "array_double": {"type": "array", "items": "double"},
    "map_long": {"type": "map", "values": "long"},
    "map_string": {"type": "map", "values": "string"},
    "fixed4": {"type": "fixed", "name": "Hash", "size": 4},
    "fixed8": {"type": "fixed", "name": "Hash", "size": 8},
    "fixed4_other": {"type": "fixed", "name": "Digest", "size": 4},
    "enum_ab": {"type": "enum", "name": "Side", "symbols": ["A", "B"]},
    "enum_abc": _ENUM_ABC,
    "enum_ab_default": {"type": "enum", "name": "Side", "symbols": ["A", "B"], "default": "A"},
    "enum_other": {"type": "enum", "name": "Colour", "symbols": ["A", "B"]},
    "union_null_int": ["null", "int"],
    "union_null_long": ["null", "long"],
    "union_int_string": ["int", "string"],
    "union_null_string_double": ["null", "string", "double"],
    "union_null_rec": ["null", _record("Trade", _f("px", "double"))],
    "rec_px_double": _record("Trade", _f("px", "double")),
    "rec_px_float": _record("Trade", _f("px", "float")),
    "rec_px_qty": _record("Trade", _f("px", "double"), _f("qty", "long")),
    "rec_px_qty_default": _record("Trade", _f("px", "double"), _f("qty", "long", default=0)),
    "rec_px_alias": _record("Trade", _f("price", "double", aliases=["px"])),
    "rec_renamed_alias": _record("Deal", _f("px", "double"), aliases=["Trade"]),
    "rec_renamed": _record("Deal", _f("px", "double")),
    "rec_ns": _record("Trade", _f("px", "double"), namespace="com.example"),
    "rec_side_enum": _record("Order", _f("side", _ENUM_ABC)),
    "rec_side_enum_ab": _record("Order", _f("side", {"type": "enum", "name": "Side", "symbols": ["A", "B"]})),
    "rec_nested_ref": _record(
        "Pair",
        _f("left", _record("Leg", _f("px", "double"))),
        _f("right", "Leg"),
    ),
    "rec_nested_ref_long": _record(
        "Pair",
        _f("left", _record("Leg", _f("px", "long"))),
        _f("right", "Leg"),
    ),
    "linked_int": _LINKED_INT,
    "linked_long": _LINKED_LONG,
    "linked_string": _LINKED_STR,
    "tree": _TREE,
    "empty_record": _record("Trade"),
}

CORPUS_PAIRS = list(itertools.product(CORPUS, repeat=2))


def _avro_verdict(reader: Any, writer: Any) -> bool:
    r = avro.schema.parse(json.dumps(reader))
    w = avro.schema.parse(json.dumps(writer))
    result = ReaderWriterCompatibilityChecker().get_compatibility(r, w)
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS_PAIRS) >= 150


@pytest.mark.parametrize(
    ("reader_name", "writer_name"),
    CORPUS_PAIRS,
    ids=[f"{r}<-{w}" for r, w in CORPUS_PAIRS],
)
def test_corpus_agrees_with_avro(reader_name: str, writer_name: str) -> None:
    reader, writer = CORPUS[reader_name], CORPUS[writer_name]
    found = can_read(reader, writer)
    assert (found == []) == _avro_verdict(reader, writer), [i.message for i in found]
    assert can_read(json.dumps(reader), json.dumps(writer)) == found


# --------------------------------------------------------------------------------------------
# 3. Hand-worked cases: the messages name the field, and the levels


V1 = _record("Quote", _f("symbol", "string"), _f("price", "double"))
V2_SIZE = _record("Quote", _f("symbol", "string"), _f("price", "double"), _f("size", "long"))
V2_SIZE_DEFAULT = _record(
    "Quote", _f("symbol", "string"), _f("price", "double"), _f("size", "long", default=0)
)
V2_PRICE_STRING = _record("Quote", _f("symbol", "string"), _f("price", "string"))


def test_added_field_without_default_names_the_field() -> None:
    [problem] = check_compatibility(V2_SIZE, [V1], CompatibilityLevel.BACKWARD)
    assert problem.type is IncompatibilityType.READER_FIELD_MISSING_DEFAULT_VALUE
    assert problem.location == "/fields/2"
    assert problem.field == "size"
    assert problem.message == (
        "field 'size' was added without a default; "
        "consumers on version 2 cannot read records written with version 1"
    )
    assert (problem.reader_version, problem.writer_version) == (2, 1)


def test_removed_field_without_default_is_a_forward_problem() -> None:
    assert check_compatibility(V1, [V2_SIZE], "BACKWARD") == []
    [problem] = check_compatibility(V1, [V2_SIZE], "forward")
    assert problem.field == "size"
    assert "field 'size' was removed" in problem.message
    assert "consumers on version 1 cannot read records written with version 2" in problem.message


def test_type_change_names_field_and_types() -> None:
    [problem] = can_read(V2_PRICE_STRING, V1)
    assert problem.type is IncompatibilityType.TYPE_MISMATCH
    assert problem.location == "/fields/1/type"
    assert problem.field == "price"
    assert "field 'price'" in problem.message
    assert "string" in problem.message and "double" in problem.message


def test_nested_field_path_and_enum_symbols() -> None:
    reader = _record("Order", _f("leg", _record("Leg", _f("side", CORPUS["enum_ab"]))))
    writer = _record("Order", _f("leg", _record("Leg", _f("side", _ENUM_ABC))))
    [problem] = can_read(reader, writer)
    assert problem.type is IncompatibilityType.MISSING_ENUM_SYMBOLS
    assert problem.field == "leg.side"
    assert problem.location == "/fields/0/type/fields/0/type/symbols"
    assert "field 'leg.side'" in problem.message and "C" in problem.message


def test_enum_default_absorbs_unknown_symbols() -> None:
    assert can_read(CORPUS["enum_ab_default"], _ENUM_ABC) == []


def test_fixed_size_and_name_mismatch_name_the_field() -> None:
    reader = _record("R", _f("hash", CORPUS["fixed4"]))
    writer = _record("R", _f("hash", CORPUS["fixed8"]))
    [problem] = can_read(reader, writer)
    assert problem.type is IncompatibilityType.FIXED_SIZE_MISMATCH
    assert problem.field == "hash" and "field 'hash'" in problem.message
    assert problem.detail == "expected: 8, found: 4"
    [named] = can_read(_record("R", _f("h", CORPUS["fixed4"])), _record("R", _f("h", CORPUS["fixed4_other"])))
    assert named.type is IncompatibilityType.NAME_MISMATCH
    assert named.location == "/fields/0/type/name" and "field 'h'" in named.message


def test_union_branch_missing_names_the_field() -> None:
    reader = _record("R", _f("qty", ["null", "int"]))
    writer = _record("R", _f("qty", ["null", "int", "string"]))
    [problem] = can_read(reader, writer)
    assert problem.type is IncompatibilityType.MISSING_UNION_BRANCH
    assert problem.location == "/fields/0/type/2"
    assert "field 'qty'" in problem.message and "string" in problem.message
    [widened] = can_read(_record("R", _f("qty", "int")), _record("R", _f("qty", ["null", "int"])))
    assert widened.type is IncompatibilityType.TYPE_MISMATCH and widened.field == "qty"


def test_reader_union_accepts_promotable_writer() -> None:
    assert can_read(["null", "double"], "int") == []
    [problem] = can_read(["null", "int"], "string")
    assert problem.type is IncompatibilityType.MISSING_UNION_BRANCH


def test_recursive_schemas_terminate_and_compare() -> None:
    assert can_read(_LINKED_LONG, _LINKED_INT) == []
    [problem] = can_read(_LINKED_INT, _LINKED_LONG)
    assert problem.field == "value"


def test_record_and_field_aliases() -> None:
    assert can_read(CORPUS["rec_px_alias"], CORPUS["rec_px_double"]) == []
    assert can_read(CORPUS["rec_renamed_alias"], CORPUS["rec_px_double"]) == []
    [problem] = can_read(CORPUS["rec_renamed"], CORPUS["rec_px_double"])
    assert problem.type is IncompatibilityType.NAME_MISMATCH


def test_namespace_relative_alias_matches() -> None:
    reader = _record("Deal", _f("px", "double"), namespace="com.x", aliases=["Trade"])
    writer = _record("Trade", _f("px", "double"), namespace="com.x")
    assert can_read(reader, writer) == []


def test_string_and_type_name_inputs() -> None:
    assert can_read("long", "int") == []
    assert can_read('"long"', '{"type": "int"}') == []
    assert [i.type for i in can_read("int", "long")] == [IncompatibilityType.TYPE_MISMATCH]


def test_invalid_schemas_raise() -> None:
    with pytest.raises(SchemaParseError, match="unknown type 'Nope'"):
        can_read(_record("R", _f("a", "Nope")), "int")
    with pytest.raises(SchemaParseError, match="not valid JSON"):
        can_read("{", "int")


@pytest.mark.parametrize(
    ("level", "expected_fields"),
    [
        ("NONE", []),
        ("BACKWARD", []),
        ("BACKWARD_TRANSITIVE", ["size"]),
        ("FORWARD", []),
        ("FORWARD_TRANSITIVE", []),
        ("FULL", []),
        ("FULL_TRANSITIVE", ["size"]),
    ],
)
def test_levels_transitivity(level: str, expected_fields: list[str]) -> None:
    # v1 lacks size; v2 adds it with a default; v3 drops the default.
    found = check_compatibility(V2_SIZE, [V1, V2_SIZE_DEFAULT], level)
    assert [i.field for i in found] == expected_fields
    if found:
        assert found[0].writer_version == 1 and found[0].reader_version == 3


def test_full_reports_both_directions() -> None:
    found = check_compatibility(V2_PRICE_STRING, [V1], "FULL")
    assert sorted((i.reader_version, i.writer_version) for i in found) == [(1, 2), (2, 1)]
    assert all(i.field == "price" for i in found)


def test_existing_versions_label_messages() -> None:
    [problem] = check_compatibility(V2_SIZE, [V1], "BACKWARD", existing_versions=[7])
    assert "version 8 cannot read records written with version 7" in problem.message


def test_parse_compatibility_level() -> None:
    assert parse_compatibility_level(" full_transitive ") is CompatibilityLevel.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevelError, match="BACKWARD_TRANSITIVE"):
        parse_compatibility_level("SIDEWAYS")
