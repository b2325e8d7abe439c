"""The Confluent Schema Registry REST API, as a function from a request to a response.

:func:`handle` maps ``(method, path segments, query, JSON body)`` onto
:class:`~tradesignals_dagster.stack.schema_registry.store.SchemaRegistryStore` calls and returns
``(status, payload)``; the HTTP plumbing lives in :mod:`.server`. Paths, bodies, status codes
and error codes follow Confluent's API so its clients work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradesignals_dagster.stack.schema_registry import errors
from tradesignals_dagster.stack.schema_registry.errors import RegistryApiError
from tradesignals_dagster.stack.schema_registry.schemas import (
    SUPPORTED_TYPES,
    PreparedSchema,
    prepare_schema,
)
from tradesignals_dagster.stack.schema_registry.store import (
    SchemaRegistryStore,
    VersionSpec,
    parse_version,
)

Query = dict[str, list[str]]
_READWRITE = "READWRITE"


@dataclass(frozen=True)
class RawJson:
    """A payload that already is JSON text (a stored schema served as-is)."""

    text: str


Response = tuple[int, Any]


def not_found() -> RegistryApiError:
    """Confluent's answer to an unknown path."""
    return RegistryApiError(404, 404, "HTTP 404 Not Found")


def method_not_allowed() -> RegistryApiError:
    """Confluent's answer to a known path with the wrong method."""
    return RegistryApiError(405, 405, "HTTP 405 Method Not Allowed")


def _flag(query: Query, name: str) -> bool:
    # confluent-kafka's lookup_schema sends Python's spelling (deleted=False), so ignore case.
    return _text(query, name).strip().lower() == "true"


def _text(query: Query, name: str, default: str = "") -> str:
    values = query.get(name)
    return values[-1] if values else default


def _page(items: list[Any], query: Query) -> list[Any]:
    try:
        offset = max(int(_text(query, "offset", "0")), 0)
        limit = int(_text(query, "limit", "-1"))
    except ValueError:
        raise errors.bad_request("offset and limit must be integers") from None
    items = items[offset:]
    return items if limit < 0 else items[:limit]


def _schema_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise not_found() from None


def _body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return body


def _prepared(body: Any) -> PreparedSchema:
    data = _body_object(body)
    return prepare_schema(data.get("schema"), data.get("schemaType"), data.get("references"))


def _level_from(body: Any) -> object:
    data = _body_object(body)
    return data.get("compatibility", data.get("compatibilityLevel"))


def handle(store: SchemaRegistryStore, method: str, segments: list[str], query: Query, body: Any) -> Response:
    """Answer one API request; raises RegistryApiError for every refusal."""
    match segments:
        case []:
            return _only(method, "GET", lambda: (200, {}))
        case ["subjects"]:
            return _only(method, "GET", lambda: _list_subjects(store, query))
        case ["subjects", subject]:
            return _subject(store, method, subject, query, body)
        case ["subjects", subject, "versions"]:
            return _versions(store, method, subject, query, body)
        case ["subjects", subject, "versions", version]:
            return _version(store, method, subject, parse_version(version), query)
        case ["subjects", subject, "versions", version, "schema"]:
            return _only(method, "GET", lambda: _raw_version(store, subject, version, query))
        case ["subjects", subject, "versions", version, "referencedby"]:
            # Schema references are not supported, so nothing ever refers to a version.
            return _only(method, "GET", lambda: _referenced_by(store, subject, version))
        case ["schemas", "types"]:
            return _only(method, "GET", lambda: (200, list(SUPPORTED_TYPES)))
        case ["schemas", "ids", schema_id, *rest]:
            return _only(method, "GET", lambda: _schema_by_id(store, _schema_id(schema_id), rest, query))
        case ["compatibility", "subjects", subject, "versions", *tail]:
            if len(tail) > 1:
                raise not_found()
            spec = parse_version(tail[0]) if tail else None
            return _only(method, "POST", lambda: _compatibility(store, subject, spec, query, body))
        case ["config", *scope] if len(scope) <= 1:
            return _config(store, method, scope[0] if scope else None, query, body)
        case ["mode", *scope] if len(scope) <= 1:
            return _mode(method, body)
        case ["contexts"]:
            return _only(method, "GET", lambda: (200, ["."]))
    raise not_found()


def _only(method: str, allowed: str, action: Callable[[], Response]) -> Response:
    if method != allowed:
        raise method_not_allowed()
    return action()


def _raw_version(store: SchemaRegistryStore, subject: str, version: str, query: Query) -> Response:
    found = store.get_version(subject, parse_version(version), deleted=_flag(query, "deleted"))
    return 200, RawJson(found.schema)


def _referenced_by(store: SchemaRegistryStore, subject: str, version: str) -> Response:
    store.get_version(subject, parse_version(version))  # 40401 / 40402 when it does not exist
    return 200, []


def _list_subjects(store: SchemaRegistryStore, query: Query) -> Response:
    names = store.subjects(
        deleted=_flag(query, "deleted"),
        deleted_only=_flag(query, "deleted_only") or _flag(query, "deletedOnly"),
        prefix=_text(query, "subjectPrefix"),
    )
    return 200, _page(names, query)


def _subject(store: SchemaRegistryStore, method: str, subject: str, query: Query, body: Any) -> Response:
    if method == "POST":
        found = store.lookup(subject, _prepared(body), deleted=_flag(query, "deleted"))
        return 200, found.to_json()
    if method == "DELETE":
        return 200, store.delete_subject(subject, permanent=_flag(query, "permanent"))
    raise method_not_allowed()


def _versions(store: SchemaRegistryStore, method: str, subject: str, query: Query, body: Any) -> Response:
    if method == "GET":
        versions = store.versions(
            subject,
            deleted=_flag(query, "deleted"),
            deleted_only=_flag(query, "deleted_only") or _flag(query, "deletedOnly"),
        )
        return 200, _page(versions, query)
    if method == "POST":
        registered = store.register(subject, _prepared(body))
        return 200, {"id": registered.schema_id, "version": registered.version}
    raise method_not_allowed()


def _version(
    store: SchemaRegistryStore, method: str, subject: str, spec: VersionSpec, query: Query
) -> Response:
    if method == "GET":
        return 200, store.get_version(subject, spec, deleted=_flag(query, "deleted")).to_json()
    if method == "DELETE":
        return 200, store.delete_version(subject, spec, permanent=_flag(query, "permanent"))
    raise method_not_allowed()


def _schema_by_id(store: SchemaRegistryStore, schema_id: int, rest: list[str], query: Query) -> Response:
    deleted = _flag(query, "deleted")
    match rest:
        case []:
            text, schema_type = store.schema_by_id(schema_id)
            body: dict[str, Any] = {"schema": text}
            if schema_type != "AVRO":
                body["schemaType"] = schema_type
            return 200, body
        case ["schema"]:
            return 200, RawJson(store.schema_by_id(schema_id)[0])
        case ["versions"]:
            pairs = store.versions_of_id(schema_id, deleted=deleted)
            return 200, [{"subject": s, "version": v} for s, v in pairs]
        case ["subjects"]:
            pairs = store.versions_of_id(schema_id, deleted=deleted)
            return 200, sorted({s for s, _ in pairs})
    raise not_found()


def _compatibility(
    store: SchemaRegistryStore, subject: str, spec: VersionSpec | None, query: Query, body: Any
) -> Response:
    problems = store.test_compatibility(subject, spec, _prepared(body))
    result: dict[str, Any] = {"is_compatible": not problems}
    if _flag(query, "verbose"):
        result["messages"] = [f"{p.type.value} at {p.location}: {p.message}" for p in problems]
    return 200, result


def _config(
    store: SchemaRegistryStore, method: str, subject: str | None, query: Query, body: Any
) -> Response:
    if method == "GET":
        level = store.get_config(subject, default_to_global=_flag(query, "defaultToGlobal"))
        return 200, {"compatibilityLevel": level.value}
    if method == "PUT":
        return 200, {"compatibility": store.set_config(subject, _level_from(body)).value}
    if method == "DELETE":
        return 200, {"compatibilityLevel": store.delete_config(subject).value}
    raise method_not_allowed()


def _mode(method: str, body: Any) -> Response:
    if method in ("GET", "DELETE"):
        return 200, {"mode": _READWRITE}
    if method == "PUT":
        mode = _body_object(body).get("mode")
        if str(mode).upper() != _READWRITE:
            raise errors.invalid_mode(mode)
        return 200, {"mode": _READWRITE}
    raise method_not_allowed()
