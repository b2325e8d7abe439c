"""Errors raised by the Kafka area: Avro schemas, their compatibility and (de)serialisation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradesignals_dagster.errors import TradesignalsError

if TYPE_CHECKING:
    from tradesignals_dagster.kafka.compatibility import Incompatibility


class KafkaAreaError(TradesignalsError):
    """Base class for every error of the Kafka area (topics, schemas, serde)."""


class SchemaParseError(KafkaAreaError):
    """An Avro schema is not valid JSON or breaks the Avro specification.

    ``path`` is a JSON-pointer-like location inside the schema (``/fields/2/type``), empty
    when the whole document is at fault.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"invalid Avro schema{where}: {message}")


class InvalidCompatibilityLevelError(KafkaAreaError):
    """A compatibility level name that is not one of Confluent's seven levels."""

    def __init__(self, value: object, valid: list[str]) -> None:
        self.value = value
        super().__init__(f"invalid compatibility level {value!r}; valid levels are {', '.join(valid)}")


class IncompatibleSchemaError(KafkaAreaError):
    """A new schema version breaks the compatibility level of its subject.

    ``incompatibilities`` lists every problem found, each naming the field involved.
    """

    def __init__(self, subject: str, incompatibilities: list[Incompatibility]) -> None:
        self.subject = subject
        self.incompatibilities = incompatibilities
        lines = "\n".join(f"  - {i.message}" for i in incompatibilities)
        super().__init__(f"the new schema for subject {subject!r} is incompatible:\n{lines}")
