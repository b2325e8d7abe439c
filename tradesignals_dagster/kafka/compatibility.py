"""Avro schema compatibility: the specification's schema-resolution rules and Confluent's levels.

:func:`can_read` answers "can a consumer using ``reader`` decode data written with ``writer``?"
and lists every reason it cannot, following the rules of the Avro specification exactly as
Apache Avro's own checker does (``org.apache.avro.SchemaCompatibility`` in Java,
``avro.compatibility`` in Python): primitive promotions, records matched by name or alias with
fields matched by name or alias, enum symbols (and enum defaults), fixed sizes, arrays, maps,
unions on either side, and recursive named types. Logical types are ignored, as Avro does.

:func:`check_compatibility` applies one of Confluent Schema Registry's compatibility levels to
a new schema and the versions already registered, and phrases each problem in terms of the
versions involved ("consumers on version 2 cannot read records written with version 1").
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from tradesignals_dagster.kafka.avro_model import SchemaLike, parse_avro
from tradesignals_dagster.kafka.errors import InvalidCompatibilityLevelError
from tradesignals_dagster.kafka.resolution import (
    Incompatibility,
    IncompatibilityType,
    Labels,
    check_pair,
)

__all__ = [
    "CompatibilityLevel",
    "Incompatibility",
    "IncompatibilityType",
    "SchemaLike",
    "can_read",
    "check_compatibility",
    "parse_compatibility_level",
]


class CompatibilityLevel(StrEnum):
    """Confluent Schema Registry's compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is checked, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with the existing ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether the existing schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


def parse_compatibility_level(value: object) -> CompatibilityLevel:
    """The level named by ``value`` (case-insensitive); raises InvalidCompatibilityLevelError."""
    if isinstance(value, str):
        try:
            return CompatibilityLevel(value.strip().upper())
        except ValueError:
            pass
    raise InvalidCompatibilityLevelError(value, [level.value for level in CompatibilityLevel])


def can_read(reader: SchemaLike, writer: SchemaLike) -> list[Incompatibility]:
    """Every reason a consumer using ``reader`` cannot decode data written with ``writer``.

    An empty list means the pair is compatible. Schemas may be JSON text, a type name, a
    decoded JSON object or a union list; invalid schemas raise SchemaParseError.
    """
    return check_pair(parse_avro(reader), parse_avro(writer), Labels())


def check_compatibility(
    new_schema: SchemaLike,
    existing_schemas_oldest_first: Sequence[SchemaLike],
    level: CompatibilityLevel | str,
    *,
    existing_versions: Sequence[int] | None = None,
) -> list[Incompatibility]:
    """Every way ``new_schema`` breaks ``level`` against the schemas already registered.

    BACKWARD: the new schema reads data written with the existing ones; FORWARD: the existing
    schemas read data written with the new one; FULL: both. Non-transitive levels compare with
    the latest existing schema only. ``existing_versions`` numbers the existing schemas for
    the messages (default 1, 2, ...); the new schema is the next number after the highest.
    """
    lvl = parse_compatibility_level(level) if isinstance(level, str) else level
    versions = list(existing_versions or range(1, len(existing_schemas_oldest_first) + 1))
    if len(versions) != len(existing_schemas_oldest_first):
        raise ValueError("existing_versions must number every existing schema")
    if lvl is CompatibilityLevel.NONE or not existing_schemas_oldest_first:
        return []
    new_version = max(versions) + 1
    new_node = parse_avro(new_schema)
    pairs = list(zip(versions, existing_schemas_oldest_first, strict=True))
    if not lvl.transitive:
        pairs = pairs[-1:]
    found: list[Incompatibility] = []
    for version, existing in reversed(pairs):
        old_node = parse_avro(existing)
        if lvl.backward:
            labels = Labels(f"version {new_version}", f"version {version}", True, new_version, version)
            found += check_pair(new_node, old_node, labels)
        if lvl.forward:
            labels = Labels(f"version {version}", f"version {new_version}", False, version, new_version)
            found += check_pair(old_node, new_node, labels)
    return found
