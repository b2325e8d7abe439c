"""Client side of a Confluent-API schema registry, with deadlines and readable errors.

The same code talks to Confluent Schema Registry in production and to the project's own
registry service in the local stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradesignals_dagster.kafka.errors import KafkaAreaError
from tradesignals_dagster.redact import redact_text, redact_url

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

# confluent-kafka's schema registry client is imported where it is used, not here: it pulls in
# authlib and httpx (~0.4 s), and every Dagster run loads the definitions that import this module,
# so a redeploy would wait for a client it never calls.

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
NO_SUBJECT_COMPATIBILITY = 40408


class SchemaRegistryClientError(KafkaAreaError):
    """The schema registry refused a request or could not be reached."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a subject."""

    subject: str
    version: int
    schema_id: int
    schema: dict[str, Any]


class SchemaRegistry:
    """The calls the control plane and serde need, over confluent-kafka's client."""

    def __init__(self, conf: dict[str, str], timeout_s: float = 10.0) -> None:
        # Only the redacted URL is kept for messages: it may carry user:password.
        self.url = redact_url(conf.get("url", "?"))
        from confluent_kafka.schema_registry import SchemaRegistryClient

        try:
            self._client = SchemaRegistryClient({**conf, "timeout": int(timeout_s), "max.retries": 1})
        except (ValueError, TypeError) as exc:
            raise SchemaRegistryClientError(
                f"schema registry at {self.url}: cannot be configured: {redact_text(str(exc))}"
            ) from None

    @property
    def client(self) -> SchemaRegistryClient:
        """The underlying confluent-kafka client, for its serializers."""
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, missing: set[int] | None = None) -> Any:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return fn(*args)
        except SchemaRegistryError as exc:
            if missing and exc.error_code in missing:
                return None
            raise SchemaRegistryClientError(
                f"schema registry at {self.url}: {what} failed: {redact_text(str(exc.error_message))} "
                f"(error {exc.error_code})"
            ) from None
        except (OSError, ValueError) as exc:
            raise self._unreachable(what, exc) from None
        except Exception as exc:  # httpx transport errors do not share a base with OSError
            if type(exc).__module__.startswith(("httpx", "httpcore")):
                raise self._unreachable(what, exc) from None
            raise

    def _unreachable(self, what: str, exc: BaseException) -> SchemaRegistryClientError:
        """The error for a registry that cannot be reached; the client's own message is
        redacted (httpx puts the request URL, credentials included, into its exceptions), and
        the original exception is not chained, so a traceback cannot show it either."""
        return SchemaRegistryClientError(
            f"cannot reach the schema registry at {self.url} ({what}): {redact_text(str(exc))}; is it "
            "running? For the local stack: tradesignals stack up"
        )

    def versions(self, subject: str) -> list[RegisteredVersion]:
        """Every live version of ``subject``, oldest first; empty when it does not exist."""
        numbers = self._call("list versions", self._client.get_versions, subject, missing={SUBJECT_NOT_FOUND})
        out = []
        for number in sorted(numbers or []):
            reg = self._call("get version", self._client.get_version, subject, number)
            out.append(
                RegisteredVersion(subject, reg.version, reg.schema_id, json.loads(reg.schema.schema_str))
            )
        return out

    def latest(self, subject: str) -> RegisteredVersion | None:
        """The latest version of ``subject``, or None."""
        reg = self._call(
            "get latest",
            self._client.get_latest_version,
            subject,
            missing={SUBJECT_NOT_FOUND, VERSION_NOT_FOUND},
        )
        if reg is None:
            return None
        return RegisteredVersion(subject, reg.version, reg.schema_id, json.loads(reg.schema.schema_str))

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register ``schema`` under ``subject``; returns its global id."""
        from confluent_kafka.schema_registry import Schema

        return int(
            self._call(
                "register",
                self._client.register_schema,
                subject,
                Schema(json.dumps(schema), "AVRO"),
            )
        )

    def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility level, or None when it follows the global one."""
        level = self._call(
            "get compatibility",
            self._client.get_compatibility,
            subject,
            missing={SUBJECT_NOT_FOUND, NO_SUBJECT_COMPATIBILITY},
        )
        return str(level) if level is not None else None

    def set_compatibility(self, subject: str, level: str) -> None:
        """Set the subject's compatibility level."""
        self._call("set compatibility", self._client.set_compatibility, subject, level)

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema with global id ``schema_id``."""
        schema = self._call("get schema", self._client.get_schema, schema_id)
        return dict(json.loads(schema.schema_str))
