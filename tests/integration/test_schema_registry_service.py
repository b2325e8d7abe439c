"""The project's schema registry service, driven by confluent-kafka's real client and serdes.

Each test starts ``python -m tradesignals_dagster.stack.schema_registry --port 0`` as a
subprocess on 127.0.0.1 with its own SQLite file, reads the ``listening on`` line for the URL
and waits until ``GET /subjects`` answers. Nothing here needs Kafka.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

MODULE = "tradesignals_dagster.stack.schema_registry"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

QUOTE_V1: dict[str, Any] = {
    "type": "record",
    "name": "Quote",
    "namespace": "tradesignals.test",
    "fields": [
        {"name": "symbol", "type": "string"},
        {"name": "price", "type": "double"},
    ],
}
QUOTE_V2_DEFAULT: dict[str, Any] = {
    **QUOTE_V1,
    "fields": [*QUOTE_V1["fields"], {"name": "size", "type": "long", "default": 0}],
}
QUOTE_V2_NO_DEFAULT: dict[str, Any] = {
    **QUOTE_V1,
    "fields": [*QUOTE_V1["fields"], {"name": "size", "type": "long"}],
}


def avro(schema: dict[str, Any]) -> Schema:
    """A confluent-kafka Schema object for an AVRO schema dict."""
    return Schema(json.dumps(schema), "AVRO")


def schema_json(schema: Schema) -> Any:
    """The decoded JSON of a Schema the registry returned."""
    assert schema.schema_str is not None
    return json.loads(schema.schema_str)


@dataclass
class RegistryProcess:
    """A registry subprocess and the URL it printed."""

    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_registry(
    db: Path, timeout: float = 30.0, extra_args: Sequence[str] = (), stderr: IO[str] | None = None
) -> RegistryProcess:
    """Start the service on a kernel-chosen port and wait until it answers.

    ``extra_args`` are added to the command line; ``stderr`` (a file) receives its log.
    """
    argv = [sys.executable, "-m", MODULE, "--host", "127.0.0.1", "--port", "0", "--db", str(db)]
    argv += ["--log-level", "WARNING", *extra_args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
    if not line.startswith("listening on http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"the registry did not report its URL, got {line!r}")
    registry = RegistryProcess(proc, line.split("listening on ", 1)[1].strip())
    with httpx.Client(trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{registry.url}/subjects").status_code == 200:
                    return registry
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    registry.stop()
    pytest.fail("the registry never answered GET /subjects")


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    """A fresh registry for one test."""
    registry = start_registry(tmp_path / "registry.db")
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture
def client(registry_url: str) -> SchemaRegistryClient:
    """confluent-kafka's client pointed at the fresh registry, without retries."""
    return SchemaRegistryClient({"url": registry_url, "max.retries": 0})


@pytest.fixture
def http(registry_url: str) -> Iterator[httpx.Client]:
    """A raw HTTP client for what SchemaRegistryClient does not expose."""
    with httpx.Client(base_url=registry_url, trust_env=False) as session:
        yield session


def error_of(call: Any, *args: Any, **kwargs: Any) -> SchemaRegistryError:
    """The SchemaRegistryError a client call raises."""
    with pytest.raises(SchemaRegistryError) as info:
        call(*args, **kwargs)
    return info.value


def test_register_lookup_and_read_back(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema("quotes-value", avro(QUOTE_V1))
    # Re-registering (a fresh client, so no cache) returns the same id and adds no version.
    fresh = SchemaRegistryClient(client.config())
    spaced = Schema(json.dumps(QUOTE_V1, indent=4, sort_keys=True), "AVRO")
    assert fresh.register_schema("quotes-value", spaced) == schema_id
    # Ids are global: the same schema under another subject shares the id.
    assert fresh.register_schema("quotes-copy-value", avro(QUOTE_V1)) == schema_id

    latest = client.get_latest_version("quotes-value")
    assert (latest.subject, latest.version, latest.schema_id) == ("quotes-value", 1, schema_id)
    assert schema_json(latest.schema) == QUOTE_V1
    assert client.get_version("quotes-value", 1).schema_id == schema_id
    assert schema_json(fresh.get_schema(schema_id)) == QUOTE_V1
    found = fresh.lookup_schema("quotes-value", avro(QUOTE_V1))
    assert (found.version, found.schema_id) == (1, schema_id)
    assert client.get_subjects() == ["quotes-copy-value", "quotes-value"]
    assert client.get_versions("quotes-value") == [1]
    pairs = {(v.subject, v.version) for v in client.get_schema_versions(schema_id)}
    assert pairs == {("quotes-value", 1), ("quotes-copy-value", 1)}
    assert client.get_schema_types() == ["AVRO"]


def test_compatible_evolution_and_levels(client: SchemaRegistryClient) -> None:
    assert client.get_compatibility() == "BACKWARD"
    first = client.register_schema("quotes-value", avro(QUOTE_V1))
    assert client.test_compatibility("quotes-value", avro(QUOTE_V2_DEFAULT)) is True
    second = client.register_schema("quotes-value", avro(QUOTE_V2_DEFAULT))
    assert second != first
    assert client.get_versions("quotes-value") == [1, 2]

    assert client.set_compatibility("quotes-value", "FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility("quotes-value") == "FULL"
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility(level="forward_transitive")
    assert client.get_compatibility() == "FORWARD_TRANSITIVE"
    err = error_of(client.set_compatibility, "quotes-value", "SIDEWAYS")
    assert (err.http_status_code, err.error_code) == (422, 42203)
    err = error_of(client.get_compatibility, "no-config-value")
    assert err.error_code == 40408


def test_incompatible_registration_is_refused_and_names_the_field(
    client: SchemaRegistryClient, http: httpx.Client
) -> None:
    client.register_schema("quotes-value", avro(QUOTE_V1))
    err = error_of(client.register_schema, "quotes-value", avro(QUOTE_V2_NO_DEFAULT))
    assert (err.http_status_code, err.error_code) == (409, 409)
    assert "field 'size' was added without a default" in err.error_message
    assert "consumers on version 2 cannot read records written with version 1" in err.error_message

    # Nothing was registered: no version, no schema id, not found by lookup.
    assert client.get_versions("quotes-value") == [1]
    assert client.get_latest_version("quotes-value").version == 1
    assert error_of(client.get_schema, 2).error_code == 40403
    assert error_of(client.lookup_schema, "quotes-value", avro(QUOTE_V2_NO_DEFAULT)).error_code == 40403

    assert client.test_compatibility("quotes-value", avro(QUOTE_V2_NO_DEFAULT)) is False
    body = {"schema": json.dumps(QUOTE_V2_NO_DEFAULT)}
    reply = http.post("/compatibility/subjects/quotes-value/versions/latest?verbose=true", json=body)
    assert reply.status_code == 200
    assert reply.json()["is_compatible"] is False
    assert any("'size'" in m for m in reply.json()["messages"])

    # With NONE the same schema is accepted.
    client.set_compatibility("quotes-value", "NONE")
    assert client.register_schema("quotes-value", avro(QUOTE_V2_NO_DEFAULT)) == 2


def test_invalid_schemas_are_42201(client: SchemaRegistryClient) -> None:
    bad = [
        Schema("{not json", "AVRO"),
        Schema(
            json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]}), "AVRO"
        ),
        Schema(json.dumps({"type": "object"}), "JSON"),
    ]
    for schema in bad:
        err = error_of(client.register_schema, "bad-value", schema)
        assert (err.http_status_code, err.error_code) == (422, 42201), err
    assert "AVRO schemas only" in error_of(client.register_schema, "bad-value", bad[2]).error_message
    assert client.get_subjects() == []


def test_missing_things_and_bad_versions(client: SchemaRegistryClient, http: httpx.Client) -> None:
    assert error_of(client.get_latest_version, "nope-value").error_code == 40401
    client.register_schema("quotes-value", avro(QUOTE_V1))
    assert error_of(client.get_version, "quotes-value", 7).error_code == 40402
    assert error_of(client.get_schema, 999).error_code == 40403
    reply = http.get("/subjects/quotes-value/versions/abc")
    assert (reply.status_code, reply.json()["error_code"]) == (422, 42202)
    assert reply.headers["content-type"] == CONTENT_TYPE
    reply = http.get("/subjects/quotes-value/versions/1/schema")
    assert reply.json() == QUOTE_V1
    assert http.get("/config/quotes-value?defaultToGlobal=true").json() == {"compatibilityLevel": "BACKWARD"}
    assert http.get("/mode").json() == {"mode": "READWRITE"}
    assert http.get("/nowhere").status_code == 404


def test_delete_subject_soft_then_permanent(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema("quotes-value", avro(QUOTE_V1))
    client.register_schema("quotes-value", avro(QUOTE_V2_DEFAULT))
    client.register_schema("other-value", avro({"type": "string"}))

    err = error_of(client.delete_subject, "quotes-value", permanent=True)
    assert err.error_code == 40405
    assert client.delete_subject("quotes-value") == [1, 2]
    assert client.get_subjects() == ["other-value"]
    assert client.get_subjects(deleted=True) == ["other-value", "quotes-value"]
    assert error_of(client.get_latest_version, "quotes-value").error_code == 40401
    assert client.get_version("quotes-value", 1, deleted=True).schema_id == schema_id
    assert error_of(client.delete_subject, "quotes-value").error_code == 40404
    # Soft-deleted schemas stay readable by id (consumers still hold such data).
    assert schema_json(client.get_schema(schema_id)) == QUOTE_V1

    assert client.delete_subject("quotes-value", permanent=True) == [1, 2]
    assert client.get_subjects(deleted=True) == ["other-value"]
    fresh = SchemaRegistryClient(client.config())
    assert error_of(fresh.get_schema, schema_id).error_code == 40403
    # After a hard delete the subject starts again at version 1.
    client.register_schema("quotes-value", avro(QUOTE_V1))
    assert client.get_versions("quotes-value") == [1]


def test_delete_version(client: SchemaRegistryClient) -> None:
    client.register_schema("quotes-value", avro(QUOTE_V1))
    client.register_schema("quotes-value", avro(QUOTE_V2_DEFAULT))
    assert error_of(client.delete_version, "quotes-value", 2, permanent=True).error_code == 40407
    assert client.delete_version("quotes-value", 2) == 2
    assert client.get_versions("quotes-value") == [1]
    assert client.get_versions("quotes-value", deleted=True) == [1, 2]
    assert error_of(client.delete_version, "quotes-value", 2).error_code == 40406
    assert client.delete_version("quotes-value", 2, permanent=True) == 2
    assert client.get_versions("quotes-value", deleted=True) == [1]
    # Version numbers continue from the highest remaining one (a fresh client: the first
    # one caches the earlier registration and would not ask the registry again).
    fresh = SchemaRegistryClient(client.config())
    fresh.register_schema("quotes-value", avro(QUOTE_V2_DEFAULT))
    assert fresh.get_versions("quotes-value") == [1, 2]


def test_avro_serde_round_trip(client: SchemaRegistryClient) -> None:
    serializer = AvroSerializer(client, json.dumps(QUOTE_V2_DEFAULT))
    deserializer = AvroDeserializer(SchemaRegistryClient(client.config()))
    ctx = SerializationContext("quotes", MessageField.VALUE)
    record = {"symbol": "AAPL", "price": 187.25, "size": 300}

    payload = serializer(record, ctx)
    assert payload is not None and payload[0] == 0  # Confluent wire format magic byte
    registered = client.get_latest_version("quotes-value")
    assert int.from_bytes(payload[1:5], "big") == registered.schema_id
    assert deserializer(payload, ctx) == record


def test_subject_names_with_slashes(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema("team/quotes-value", avro(QUOTE_V1))
    assert client.get_latest_version("team/quotes-value").schema_id == schema_id
    assert client.get_subjects() == ["team/quotes-value"]


def test_concurrent_registrations(client: SchemaRegistryClient) -> None:
    client.set_compatibility(level="NONE")
    ids: dict[int, int] = {}
    failures: list[BaseException] = []

    def register(n: int) -> None:
        try:
            own = SchemaRegistryClient(client.config())
            schema = {"type": "record", "name": f"R{n}", "fields": [{"name": "a", "type": "int"}]}
            ids[n] = own.register_schema("busy-value", avro(schema))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(set(ids.values())) == 16
    assert client.get_versions("busy-value") == list(range(1, 17))


def test_data_persists_across_restart(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    first = start_registry(db)
    try:
        c1 = SchemaRegistryClient({"url": first.url, "max.retries": 0})
        quote_id = c1.register_schema("quotes-value", avro(QUOTE_V1))
        c1.register_schema("quotes-value", avro(QUOTE_V2_DEFAULT))
        c1.register_schema("gone-value", avro({"type": "string"}))
        c1.delete_subject("gone-value")
        c1.set_compatibility("quotes-value", "FULL_TRANSITIVE")
        c1.set_compatibility(level="FORWARD")
    finally:
        first.stop()

    second = start_registry(db)
    try:
        c2 = SchemaRegistryClient({"url": second.url, "max.retries": 0})
        assert c2.get_subjects() == ["quotes-value"]
        assert c2.get_subjects(deleted=True) == ["gone-value", "quotes-value"]
        assert c2.get_versions("quotes-value") == [1, 2]
        assert c2.get_version("quotes-value", 1).schema_id == quote_id
        assert c2.get_compatibility("quotes-value") == "FULL_TRANSITIVE"
        assert c2.get_compatibility() == "FORWARD"
        new_id = c2.register_schema("more-value", avro({"type": "long"}))
        assert new_id > quote_id + 1  # ids keep counting; none is reused
        err = error_of(c2.register_schema, "quotes-value", avro(QUOTE_V2_NO_DEFAULT))
        assert err.error_code == 409 and "'size'" in err.error_message
    finally:
        second.stop()
