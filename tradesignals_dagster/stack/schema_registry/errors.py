"""Errors of the schema registry service, carrying Confluent's HTTP status and error code.

Each constructor below builds the error Confluent Schema Registry returns in the same
situation, so clients (``confluent_kafka.schema_registry.SchemaRegistryClient`` and others)
see the codes they already handle: 40401 subject not found, 42201 invalid schema, and so on.
"""

from __future__ import annotations

from typing import Any

from tradesignals_dagster.stack.errors import StackError


class RegistryApiError(StackError):
    """A request the registry refuses; rendered as ``{"error_code": N, "message": "..."}``."""

    def __init__(self, http_status: int, error_code: int, message: str) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """The JSON error body Confluent's clients parse."""
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> RegistryApiError:
    """40401: the subject has no versions (or only soft-deleted ones)."""
    return RegistryApiError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: object) -> RegistryApiError:
    """40402: the subject exists but not with this version."""
    return RegistryApiError(404, 40402, f"Version {version} not found for subject '{subject}'.")


def schema_not_found(detail: str = "Schema not found") -> RegistryApiError:
    """40403: no such schema id, or the schema is not registered under the subject."""
    return RegistryApiError(404, 40403, detail)


def subject_soft_deleted(subject: str) -> RegistryApiError:
    """40404: the subject was already soft-deleted."""
    return RegistryApiError(
        404,
        40404,
        f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
    )


def subject_not_soft_deleted(subject: str) -> RegistryApiError:
    """40405: a permanent delete of a subject that was not soft-deleted first."""
    return RegistryApiError(
        404,
        40405,
        f"Subject '{subject}' was not deleted first before being permanently deleted",
    )


def version_soft_deleted(subject: str, version: int) -> RegistryApiError:
    """40406: the version was already soft-deleted."""
    return RegistryApiError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryApiError:
    """40407: a permanent delete of a version that was not soft-deleted first."""
    return RegistryApiError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being permanently deleted",
    )


def subject_level_config_not_found(subject: str) -> RegistryApiError:
    """40408: ``GET /config/{subject}`` for a subject without its own level."""
    return RegistryApiError(
        404,
        40408,
        f"Subject '{subject}' does not have subject-level compatibility configured",
    )


def invalid_schema(detail: str) -> RegistryApiError:
    """42201: the schema is not valid (or not a kind this registry stores)."""
    return RegistryApiError(422, 42201, f"Invalid schema: {detail}")


def invalid_version(version: object) -> RegistryApiError:
    """42202: a version that is neither a positive integer nor ``latest``."""
    return RegistryApiError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. Allowed values are "
        'between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level(value: object) -> RegistryApiError:
    """42203: an unknown compatibility level name."""
    return RegistryApiError(
        422,
        42203,
        f"Invalid compatibility level {value!r}. Valid values are none, backward, forward, "
        "full, backward_transitive, forward_transitive, and full_transitive",
    )


def invalid_mode(value: object) -> RegistryApiError:
    """42204: a mode other than READWRITE (the only one this registry has)."""
    return RegistryApiError(422, 42204, f"Invalid mode {value!r}: this registry only supports READWRITE")


def incompatible_schema(message: str) -> RegistryApiError:
    """409: the schema breaks the subject's compatibility level."""
    return RegistryApiError(409, 409, message)


def bad_request(message: str) -> RegistryApiError:
    """400: the request body is not the JSON the endpoint expects."""
    return RegistryApiError(400, 400, message)


def payload_too_large(limit: int) -> RegistryApiError:
    """413: the request body is larger than the service accepts (``--max-body-bytes``)."""
    return RegistryApiError(413, 413, f"the request body is larger than the {limit}-byte limit")


def bad_header(message: str) -> RegistryApiError:
    """400: a request header (``Content-Length``, ``Transfer-Encoding``) cannot be honoured."""
    return RegistryApiError(400, 400, message)


def length_required() -> RegistryApiError:
    """411: a body sent without ``Content-Length`` (chunked transfer encoding is not supported)."""
    return RegistryApiError(
        411, 411, "a request body needs a Content-Length header; chunked transfer encoding is not supported"
    )
