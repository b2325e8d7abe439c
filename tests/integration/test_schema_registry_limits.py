"""The schema registry service refuses hostile requests cleanly and keeps serving.

Oversized bodies get 413, malformed ``Content-Length`` headers and bodies 400 (411 for chunked
encoding), the HTTP parser's own refusals the Confluent error shape; none of them leaves a
traceback in the service's log. The service runs as a real subprocess
(``python -m tradesignals_dagster.stack.schema_registry``); requests go over raw sockets where a
client library would refuse to send them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_schema_registry_service import CONTENT_TYPE, RegistryProcess, start_registry

LIMIT = 64 * 1024


@dataclass
class Service:
    """A running registry, its URL and the file its log goes to."""

    process: RegistryProcess
    log: Path

    @property
    def url(self) -> str:
        """The base URL."""
        return self.process.url

    def log_text(self) -> str:
        """Everything the service logged so far."""
        return self.log.read_text(errors="replace")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A registry with a 64 KiB body limit, logging at WARNING into a file."""
    log = tmp_path / "registry.log"
    with log.open("w") as sink:
        process = start_registry(
            tmp_path / "registry.db", extra_args=["--max-body-bytes", str(LIMIT)], stderr=sink
        )
    try:
        yield Service(process, log)
    finally:
        process.stop()


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 5.0) -> tuple[int, Any]:
    """Send ``head`` (request line and headers, no blank line) and ``body`` over a socket;
    return the status and the decoded JSON body of the answer."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the service closed the connection without answering: {data!r}"
            data += chunk
        header_blob, _, rest = data.partition(b"\r\n\r\n")
        lines = header_blob.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        assert headers.get("content-type") == CONTENT_TYPE, headers
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "the answer was cut short"
            rest += chunk
    return status, json.loads(rest[:length])


def post_head(length_headers: str, path: str = "/subjects/s-value/versions") -> str:
    """A POST request head with the given length-related header lines."""
    return f"POST {path} HTTP/1.1\r\nHost: registry\r\nContent-Type: {CONTENT_TYPE}\r\n{length_headers}"


def assert_confluent_error(status: int, body: Any, expected: int, words: str) -> None:
    """``body`` is Confluent's error shape with ``error_code == expected`` mentioning ``words``."""
    assert status == expected, body
    assert set(body) == {"error_code", "message"} and body["error_code"] == expected, body
    assert words.lower() in body["message"].lower(), body


def schema_of_size(size: int) -> dict[str, Any]:
    """A valid Avro record whose registration body is about ``size`` bytes."""
    doc = "x" * size
    return {"type": "record", "name": "Big", "doc": doc, "fields": [{"name": "a", "type": "string"}]}


def test_oversized_bodies_are_413_and_never_stored(service: Service) -> None:
    with httpx.Client(base_url=service.url, trust_env=False, timeout=10) as http:
        body = {"schema": json.dumps(schema_of_size(LIMIT + 1024))}
        answer = http.post("/subjects/big-value/versions", json=body)
        assert_confluent_error(answer.status_code, answer.json(), 413, str(LIMIT))
        assert http.get("/subjects").json() == []
        small = {"schema": json.dumps(schema_of_size(LIMIT // 2))}
        assert http.post("/subjects/big-value/versions", json=small).json() == {"id": 1, "version": 1}

    # A huge declared length is refused from the headers alone, without waiting for the body.
    started = time.monotonic()
    status, answer_body = raw_request(service.url, post_head("Content-Length: 100000000"))
    assert_confluent_error(status, answer_body, 413, "larger than")
    assert time.monotonic() - started < 3
    assert "Traceback" not in service.log_text()


def test_the_default_limit_is_one_mebibyte(tmp_path: Path) -> None:
    registry = start_registry(tmp_path / "registry.db")
    try:
        with httpx.Client(base_url=registry.url, trust_env=False, timeout=10) as http:
            over = {"schema": json.dumps(schema_of_size(1 << 20))}
            answer = http.post("/subjects/big-value/versions", json=over)
            assert_confluent_error(answer.status_code, answer.json(), 413, "1048576")
            under = {"schema": json.dumps(schema_of_size(900_000))}
            assert http.post("/subjects/big-value/versions", json=under).status_code == 200
    finally:
        registry.stop()


@pytest.mark.parametrize(
    ("headers", "expected", "words"),
    [
        ("Content-Length: abc", 400, "Content-Length must be a non-negative integer"),
        ("Content-Length: -5", 400, "Content-Length must be a non-negative integer"),
        ("Content-Length: 1e3", 400, "Content-Length must be a non-negative integer"),
        ("Content-Length: 0x10", 400, "Content-Length must be a non-negative integer"),
        ("Content-Length: \u00b2", 400, "Content-Length must be a non-negative integer"),
        ("Content-Length: 5\r\nContent-Length: 6", 400, "conflicting Content-Length"),
        ("Content-Length: 99999999999999999999999999999999", 413, "larger than"),
        ("Content-Length: 2000000\r\nExpect: 100-continue", 413, "larger than"),  # refused unsent
        ("Transfer-Encoding: chunked", 411, "Content-Length header"),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5", 400, "must not be combined"),
    ],
)
def test_bad_length_headers_are_client_errors(
    service: Service, headers: str, expected: int, words: str
) -> None:
    status, body = raw_request(service.url, post_head(headers))
    assert_confluent_error(status, body, expected, words)
    with httpx.Client(base_url=service.url, trust_env=False) as http:
        assert http.get("/subjects").status_code == 200  # still serving
    log = service.log_text()
    assert "Traceback" not in log and "error serving" not in log, log


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'["a schema in a list"]', "must be a JSON object"),
    ],
)
def test_bad_bodies_are_400_without_a_traceback(service: Service, body: bytes, words: str) -> None:
    status, answer = raw_request(service.url, post_head(f"Content-Length: {len(body)}"), body)
    assert_confluent_error(status, answer, 400, words)
    assert "Traceback" not in service.log_text()


def test_a_body_shorter_than_its_length_is_400(service: Service) -> None:
    parts = urlsplit(service.url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall((post_head("Content-Length: 100") + "\r\n\r\n").encode() + b'{"schema": ')
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b'"error_code": 400' in answer and b"ended before Content-Length" in answer
    assert "Traceback" not in service.log_text()


def test_the_http_parsers_own_refusals_have_the_confluent_shape(service: Service) -> None:
    status, body = raw_request(service.url, "GARBAGE")
    assert_confluent_error(status, body, 400, "bad request")
    status, body = raw_request(service.url, "BREW /subjects HTTP/1.1\r\nHost: registry")
    assert_confluent_error(status, body, 501, "unsupported method")
    assert "Traceback" not in service.log_text()
