"""The HTTP layer of the schema registry: the standard library's ThreadingHTTPServer.

Requests are decoded here (path segments URL-decoded one by one, so subjects may contain
``/`` as ``%2F``; the query string; a JSON body) and passed to :func:`.api.handle`. Every
response is JSON with Confluent's content type. :class:`RunningRegistry` runs a server on a
background thread for in-process use (tests, the embedded stack).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tradesignals_dagster.stack.schema_registry import api
from tradesignals_dagster.stack.schema_registry.errors import RegistryApiError
from tradesignals_dagster.stack.schema_registry.store import SchemaRegistryStore

LOCALHOST = "127.0.0.1"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_log = logging.getLogger(__name__)


class RegistryHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that owns the store its handlers use."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: SchemaRegistryStore) -> None:
        self.store = store
        super().__init__(address, RegistryRequestHandler)

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

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryApiError(400, 400, f"the request body is not valid JSON: {exc}") from exc

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            body = self._read_body()
            status, payload = api.handle(self.server.store, method, segments, query, body)
        except RegistryApiError as exc:
            status, payload = exc.http_status, exc.body()
        except Exception:
            _log.exception("error serving %s %s", method, self.path)
            status = 500
            payload = {"error_code": 50001, "message": "Error in the backend data store"}
        raw = payload.text if isinstance(payload, api.RawJson) else json.dumps(payload)
        data = raw.encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def create_server(store: SchemaRegistryStore, host: str = LOCALHOST, port: int = 0) -> RegistryHTTPServer:
    """Bind a registry server to ``host:port`` (0 picks a free port); not yet serving."""
    return RegistryHTTPServer((host, port), store)


class RunningRegistry:
    """A registry serving on a background thread; use as a context manager or start/stop."""

    def __init__(self, db_path: str | Path, host: str = LOCALHOST, port: int = 0) -> None:
        """Prepare a registry storing into ``db_path``; nothing is bound until :meth:`start`."""
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
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
            self._server = create_server(store, self.host, self.port)
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
