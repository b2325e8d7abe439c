"""Validating and canonicalising the schemas clients register.

A schema is accepted when it is AVRO, has no references, is valid JSON and passes the project's
one Avro validity check (:func:`~tradesignals_dagster.kafka.avro_validity.check_avro`, also run
by ``tradesignals validate``). It is stored as compact JSON (the form returned
to clients) and deduplicated by a canonical key that ignores whitespace, key order and the
``{"type": "string"}`` / ``"string"`` spelling difference, so the same schema registered under
two subjects, or twice, gets one global id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tradesignals_dagster.kafka.avro_model import PRIMITIVE_TYPES
from tradesignals_dagster.kafka.avro_validity import check_avro
from tradesignals_dagster.kafka.errors import SchemaParseError
from tradesignals_dagster.stack.schema_registry.errors import invalid_schema

AVRO = "AVRO"
SUPPORTED_TYPES = (AVRO,)


@dataclass(frozen=True)
class PreparedSchema:
    """A validated schema: ``text`` as stored and served, ``canonical`` for deduplication."""

    text: str
    canonical: str
    schema_type: str = AVRO


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"type"} and value["type"] in PRIMITIVE_TYPES:
            return value["type"]
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def prepare_schema(schema: object, schema_type: object = None, references: object = None) -> PreparedSchema:
    """Validate a schema from a request body; raises the registry's 42201 error if invalid."""
    kind = AVRO if schema_type is None else str(schema_type).upper()
    if kind not in SUPPORTED_TYPES:
        raise invalid_schema(
            f"schemaType {schema_type!r} is not supported; this registry stores AVRO schemas only"
        )
    if references:
        raise invalid_schema("schema references are not supported by this registry")
    if not isinstance(schema, str) or not schema.strip():
        raise invalid_schema("the request needs a non-empty 'schema' string")
    try:
        decoded = json.loads(schema)
    except json.JSONDecodeError as exc:
        raise invalid_schema(f"not valid JSON ({exc})") from exc
    except RecursionError:
        raise invalid_schema("the schema nests too deeply") from None
    if not isinstance(decoded, (str, dict, list)):
        raise invalid_schema("an Avro schema is a JSON string, object or array")
    try:
        check_avro(decoded)  # the same check as `tradesignals validate`
    except SchemaParseError as exc:
        raise invalid_schema(str(exc)) from exc
    text = json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
    canonical = json.dumps(_normalise(decoded), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return PreparedSchema(text=text, canonical=canonical, schema_type=kind)
