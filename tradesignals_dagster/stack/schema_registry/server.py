"""The HTTP layer of the schema registry: the standard library's ThreadingHTTPServer.

Requests are decoded here (path segments URL-decoded one by one, so subjects may contain
``/`` as ``%2F``; the query string; a JSON body) and passed to :func:`.api.handle`. Every
response is JSON with Confluent's content type. :class:`RunningRegistry` runs a server on a
background thread for in-process use (tests, the embedded stack).

The service is meant for a laptop or CI, but it still refuses what a client should not be able
to do to it: bodies above ``max_body_bytes`` (1 MiB by default, ``--max-body-bytes``) are
answered with 413 before they are read; a ``Content-Length`` that is missing a number, negative,
repeated with different values or combined with chunked encoding gets 400 (411 for chunked
alone); a connection silent for ``request_timeout_s`` is dropped. Every refusal, including the
HTTP parser's own (bad request line, too many headers), has Confluent's error shape
``{"error_code": N, "message": "..."}``. Client errors are logged in one line at DEBUG; only
unexpected failures (a 500, a bug) are logged with a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tradesignals_dagster.stack.schema_registry import api, errors
from tradesignals_dagster.stack.schema_registry.errors import RegistryApiError
from tradesignals_dagster.stack.schema_registry.store import SchemaRegistryStore

LOCALHOST = "127.0.0.1"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
DEFAULT_MAX_BODY_BYTES = 1 << 20  # a schema is a few KiB; Confluent's own default is far above need
DEFAULT_REQUEST_TIMEOUT_S = 30.0
# A refused body up to this size is read and dropped, so the client sees the 413 instead of a
# reset connection; anything larger is not worth reading and the connection is closed at once.
_DRAIN_LIMIT = 8 << 20
_log = logging.getLogger(__name__)


class RegistryHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that owns the store its handlers use, and its request limits."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        store: SchemaRegistryStore,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        super().__init__(address, RegistryRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (reset, timeout) is logged at DEBUG; anything else is a bug
        and keeps its traceback. (The default prints every case to stderr.)"""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            _log.debug("connection from %s dropped: %s", client_address, exc)
            return
        _log.exception("error serving a request from %s", client_address)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (the real port when 0 was asked for)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class RegistryRequestHandler(BaseHTTPRequestHandler):
    """Decodes one request, calls the API and writes the JSON response."""

    server: RegistryHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "tradesignals-schema-registry"

    @property  # read by StreamRequestHandler.setup() as the socket timeout
    def timeout(self) -> float:  # type: ignore[override]
        """Seconds a connection may stay silent (mid-request or idle between requests)."""
        return self.server.request_timeout_s

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._dispatch("POST")

    def do_PUT(self) -> None:
        """Serve a PUT request."""
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        """Serve a DELETE request."""
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go to the logger at DEBUG instead of stderr."""
        _log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The HTTP parser's own refusals (bad request line, 414, 431, 501), in Confluent's
        JSON shape instead of an HTML page; the connection is closed afterwards."""
        text = message or self.responses.get(code, ("error",))[0]
        if getattr(self, "request_version", "") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # an unparsable line: answer with a status line anyway
        _log.debug("refused a malformed request from %s: %d %s", self.address_string(), code, text)
        self._respond(int(code), {"error_code": int(code), "message": text}, close=True)

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue`` with the refusal itself when the headers already
        say the body will be refused, so the client does not send it."""
        try:
            self._content_length(drain=False)
        except RegistryApiError as exc:
            self._respond(exc.http_status, exc.body(), close=True)
            return False
        return super().handle_expect_100()

    def _content_length(self, *, drain: bool = True) -> int:
        """The body's declared size, checked before a byte of it is read; a refused body of
        modest size is read and dropped when ``drain`` (the client is sending it)."""
        values = self.headers.get_all("Content-Length") or []
        chunked = self.headers.get("Transfer-Encoding") is not None
        if chunked and values:
            raise errors.bad_header("Content-Length and Transfer-Encoding must not be combined")
        if chunked:
            raise errors.length_required()
        if not values:
            return 0
        distinct = {v.strip() for v in values}
        if len(distinct) > 1:
            raise errors.bad_header("the request has conflicting Content-Length headers")
        text = distinct.pop()
        if not (text.isascii() and text.isdigit()):
            raise errors.bad_header(f"Content-Length must be a non-negative integer, got {text[:40]!r}")
        limit = self.server.max_body_bytes
        if len(text) > 18 or int(text) > limit:  # 18 digits: no huge int() conversions
            if drain and len(text) <= 18 and int(text) <= _DRAIN_LIMIT:
                self._discard(int(text))
            raise errors.payload_too_large(limit)
        return int(text)

    def _discard(self, length: int) -> None:
        """Read and drop ``length`` body bytes (a refused body the client is still sending)."""
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _read_body(self) -> Any:
        length = self._content_length()
        raw = self.rfile.read(length) if length > 0 else b""
        if len(raw) < length:
            raise errors.bad_request("the request body ended before Content-Length bytes")
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise errors.bad_request("the request body is not valid JSON: nested too deeply") from None

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = parse_qs(parts.query, keep_blank_values=True)
        close = False
        try:
            try:
                body = self._read_body()
            except RegistryApiError:
                close = True  # what is left of the body cannot be told from the next request
                raise
            status, payload = api.handle(self.server.store, method, segments, query, body)
        except RegistryApiError as exc:
            _log.debug("%s %r -> %d %s", method, self.path, exc.http_status, exc.message)
            status, payload = exc.http_status, exc.body()
        except (TimeoutError, ConnectionError):
            raise  # the client stalled or went away: handle_one_request drops the connection
        except Exception:
            _log.exception("error serving %s %r", method, self.path)
            status = 500
            payload = {"error_code": 50001, "message": "Error in the backend data store"}
        self._respond(status, payload, close=close)

    def _respond(self, status: int, payload: Any, *, close: bool = False) -> None:
        raw = payload.text if isinstance(payload, api.RawJson) else json.dumps(payload)
        data = raw.encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def create_server(
    store: SchemaRegistryStore,
    host: str = LOCALHOST,
    port: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> RegistryHTTPServer:
    """Bind a registry server to ``host:port`` (0 picks a free port); not yet serving.

    Request bodies above ``max_body_bytes`` are refused with 413.
    """
    return RegistryHTTPServer((host, port), store, max_body_bytes)


class RunningRegistry:
    """A registry serving on a background thread; use as a context manager or start/stop."""

    def __init__(
        self,
        db_path: str | Path,
        host: str = LOCALHOST,
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """Prepare a registry storing into ``db_path``; nothing is bound until :meth:`start`."""
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._server: RegistryHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use; only valid once started."""
        if self._server is None:
            raise RuntimeError("the registry is not running")
        return self._server.url

    def start(self) -> str:
        """Open the store, bind and start serving; returns the URL."""
        store = SchemaRegistryStore(self.db_path)
        try:
            self._server = create_server(store, self.host, self.port, self.max_body_bytes)
        except BaseException:
            store.close()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="schema-registry", daemon=True
        )
        self._thread.start()
        return self._server.url

    def stop(self) -> None:
        """Stop serving, release the port and close the database."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        server.store.close()

    def __enter__(self) -> RunningRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
