"""A local ClickHouse endpoint: one process owns an on-disk chdb database and serves it over
the part of ClickHouse's HTTP interface that clickhouse-connect and curl use.

Why: an on-disk chdb database can be open in one process only, while the sink, Dagster runs,
checks and a user's queries all need it at once. With this endpoint every one of them talks
HTTP to ``http://127.0.0.1:PORT``, the code path it uses against a real ClickHouse server.

Run: ``python -m tradesignals_dagster.warehouse.endpoint --path DIR --port N [--user U]``;
the password, if any, is read from ``$TRADESIGNALS_CLICKHOUSE_PASSWORD`` when the process
starts (never from the command line, which other users can read). ``--port 0`` picks a free
port; the first line on stdout is ``listening on http://127.0.0.1:PORT``.

What is served (the spec; anything else is not):

- ``GET /ping`` (also ``HEAD``) answers ``200 Ok.\\n`` without credentials. ``GET /`` with no
  query answers the same.
- ``GET /?query=...`` and ``POST /`` run one statement. The statement is the ``query`` URL
  parameter followed by the request body, as in ClickHouse. For ``INSERT ... FORMAT f`` the
  bytes after the format name (after spaces and one line break) are the data, in any input
  format the engine has: Native, RowBinary, Arrow, ArrowStream, Parquet, CSV, JSONEachRow,
  AvroConfluent (with the ``format_avro_schema_registry_url`` setting)...
- URL parameters: ``database`` (the current database of the statement), ``default_format``
  (the output format when the statement has no ``FORMAT``; TabSeparated otherwise),
  ``query_id`` (echoed in ``X-ClickHouse-Query-Id``), ``param_<name>`` (query parameters,
  ``{name:Type}``), and any ClickHouse setting by name (applied to this statement only;
  an unknown name is error 115). Session, compression and progress parameters
  (``session_id``, ``enable_http_compression``, ``send_progress_in_http_headers``,
  ``client_protocol_version``, ``http_*``...) are accepted and ignored (``wait_end_of_query=1``
  turns off streaming):
  every request is independent, answers are never compressed, and Native answers use
  protocol version 0 (clickhouse-connect's probe detects that).
- Request bodies may be ``Content-Length`` or chunked, and compressed with
  ``Content-Encoding`` lz4 (concatenated frames, as clickhouse-connect sends them), zstd,
  gzip, deflate or br (when brotli is installed). ClickHouse's own ``decompress=1`` block
  format is not supported.
- Credentials: ``Authorization: Basic``, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or the
  ``user``/``password`` parameters; the configured user (``default``) with the configured
  password (empty unless set). Anything else is error 516, AUTHENTICATION_FAILED (HTTP 403).
- Success: 200 with the result bytes, ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Summary``
  (read/written rows and bytes, elapsed_ns, as strings), ``X-ClickHouse-Timezone``, and
  ``X-ClickHouse-Format`` for statements that return a result set.
- Failure: ``X-ClickHouse-Exception-Code: N`` and the body
  ``Code: N. DB::Exception: <message> (NAME) (version V)``, with the HTTP status ClickHouse
  uses (400 syntax and bad input, 403 credentials, 404 unknown table/database/function,
  413 body too large, 500 otherwise), so clickhouse-connect raises ``DatabaseError`` with
  ``.code == N``. Client errors are logged as one line, never with a traceback.
- Request bodies are capped (``--max-body-mb``, also after decompression): error 229.

Statements run one at a time through the single chdb engine
(:class:`~tradesignals_dagster.warehouse.engine.ChdbEngine`). A SELECT answering in Native,
ArrowStream or JSONEachRow is sent in HTTP chunks while chdb makes it (so an export's first
batch arrives after ~0.1 s, not after the whole sorted result; ``wait_end_of_query=1`` asks for
one piece), see :mod:`~tradesignals_dagster.warehouse.streamed`; other answers are built in
memory first. Either way chdb's side runs at its own pace and a result is held in memory until
the client has read it. The server binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tradesignals_dagster.warehouse.engine import ChdbEngine
from tradesignals_dagster.warehouse.protocol import (
    RESULT_KINDS,
    ServerException,
    build_request,
    credentials,
    decompress_body,
    http_status,
    output_format,
)
from tradesignals_dagster.warehouse.streamed import SpliceError, streamable

LOCALHOST = "127.0.0.1"
PASSWORD_ENV = "TRADESIGNALS_CLICKHOUSE_PASSWORD"
_log = logging.getLogger(__name__)
_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
    "json": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
}


class EndpointConfig(BaseModel):
    """How one endpoint process serves its database."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="The chdb database directory this process owns.")
    host: str = Field(LOCALHOST, description="Address to bind; loopback only by default.")
    port: int = Field(8123, ge=0, le=65535, description="Port to bind; 0 lets the kernel choose.")
    user: str = Field("default", description="The one user the endpoint accepts.")
    password: SecretStr | None = Field(None, description="That user's password; None means empty.")
    max_body_bytes: int = Field(
        1024 << 20, gt=0, description="Largest request body, compressed or decompressed."
    )


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding the engine and the config its handlers use."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: EndpointConfig, engine: ChdbEngine) -> None:
        self.config = config
        self.engine = engine
        super().__init__((config.host, config.port), ClickHouseRequestHandler)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (the real port when 0 was asked for)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class ClickHouseRequestHandler(BaseHTTPRequestHandler):
    """Serves ``/ping`` and ``/``; see the module docstring for what a request may carry."""

    server: ClickHouseHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "tradesignals-clickhouse-endpoint"

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._serve()

    def do_HEAD(self) -> None:
        """Serve a HEAD request (health checks)."""
        self._reply(200, b"", {"Content-Type": "text/plain; charset=UTF-8"}, head=True)

    def log_message(self, format: str, *args: Any) -> None:
        """Request lines go to the logger at DEBUG instead of stderr."""
        _log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/ping":
            self._reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if parts.path not in ("", "/"):
            self.close_connection = True
            body = f"There is no handle {parts.path}\n\nUse / or /ping.\n".encode()
            self._reply(404, body, {"Content-Type": "text/plain; charset=UTF-8"})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        engine = self.server.engine
        try:
            self._authenticate(params)
            body = self._read_body()
            if not body and not params.get("query"):
                self._reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                return
            request = build_request(params, body)
            fmt = output_format(request.statement, request.default_format)
            if request.insert_format is None and streamable(request.kind, fmt) and not _buffered(params):
                result = engine.stream(request, fmt)
            else:
                result = engine.execute(request)
        except ServerException as exc:
            _log.info("request failed: code %s %s", exc.code, exc.name)
            self._reply(
                http_status(exc.code),
                exc.body(engine.version),
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(exc.code),
                },
            )
            return
        except Exception:
            _log.exception("internal error serving %s", self.command)
            error = ServerException(1001, "Internal error in the local ClickHouse endpoint")
            self.close_connection = True
            self._reply(500, error.body(engine.version), {"X-ClickHouse-Exception-Code": "1001"})
            return
        headers = {
            "Content-Type": _content_type(result.fmt),
            "X-ClickHouse-Query-Id": result.query_id,
            "X-ClickHouse-Timezone": engine.timezone,
            "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
        }
        if result.fmt is not None and request.kind in RESULT_KINDS:
            headers["X-ClickHouse-Format"] = result.fmt
        if result.chunks is not None:
            try:
                self._reply_chunked(headers, result.chunks)
            finally:
                result.cancel()  # a no-op once the engine has made the whole answer
        else:
            self._reply(200, result.body, headers)

    def _reply_chunked(self, headers: dict[str, str], chunks: Iterator[bytes]) -> None:
        """200 and the answer in HTTP chunks as the engine makes them. An error after the first
        chunk is written into the body, as ClickHouse writes it (``Code: N. DB::Exception...``),
        and the response is cut off without its last chunk, so no client takes it as complete."""
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        write = self.wfile.write
        try:
            for chunk in chunks:
                write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        except OSError as exc:  # the client went away; the engine finishes on its own
            _log.info("client closed a streamed answer early: %s", exc)
            self.close_connection = True
            return
        except (ServerException, SpliceError) as exc:
            error = exc if isinstance(exc, ServerException) else ServerException(1001, str(exc))
            _log.info("streamed answer failed: code %s %s", error.code, error.name)
            message = error.body(self.server.engine.version)
            write(b"%x\r\n%b\r\n" % (len(message), message))
            self.close_connection = True
            return
        write(b"0\r\n\r\n")

    def _authenticate(self, params: dict[str, str]) -> None:
        config = self.server.config
        user, password = credentials(self.headers, params)
        expected = config.password.get_secret_value() if config.password else ""
        user_ok = hmac.compare_digest(user.encode(), config.user.encode())
        if not (hmac.compare_digest(password.encode(), expected.encode()) and user_ok):
            self.close_connection = True  # the body is left unread
            raise ServerException(
                516,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name.",
            )

    def _read_body(self) -> bytes:
        """The request body (Content-Length or chunked), capped, then decompressed."""
        limit = self.server.config.max_body_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked(limit)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > limit:
                self.close_connection = True
                raise ServerException(229, f"The request body ({length} bytes) exceeds {limit} bytes.")
            raw = self.rfile.read(length) if length > 0 else b""
            if len(raw) != length:
                self.close_connection = True
                raise ServerException(36, "The request body ended before Content-Length bytes.")
        return decompress_body(raw, self.headers.get("Content-Encoding"), limit)

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                self.close_connection = True
                raise ServerException(36, "Malformed chunked request body.") from exc
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > limit:
                self.close_connection = True
                raise ServerException(229, f"The request body exceeds {limit} bytes.")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _reply(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _buffered(params: dict[str, str]) -> bool:
    """``wait_end_of_query=1``: the client asked for the answer in one piece."""
    return params.get("wait_end_of_query", "").strip().lower() in ("1", "true")


def _content_type(fmt: str | None) -> str:
    if fmt is None:
        return "text/plain; charset=UTF-8"
    return _CONTENT_TYPES.get(fmt.lower(), "application/octet-stream")


def create_server(config: EndpointConfig) -> ClickHouseHTTPServer:
    """Open the database and bind the server (not yet serving)."""
    engine = ChdbEngine(config.path)
    try:
        return ClickHouseHTTPServer(config, engine)
    except BaseException:
        engine.close()
        raise


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m tradesignals_dagster.warehouse.endpoint",
        description="Serve an on-disk chdb database over ClickHouse's HTTP interface.",
    )
    parser.add_argument("--path", type=Path, required=True, help="the chdb database directory")
    parser.add_argument("--host", default=LOCALHOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8123, help="port to bind; 0 picks a free one")
    parser.add_argument("--user", default="default", help="the accepted user (default: default)")
    parser.add_argument("--max-body-mb", type=int, default=1024, help="request body cap in MiB")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; returns the exit status (2: bad options, 1: failed)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    password = os.environ.get(PASSWORD_ENV)
    try:
        config = EndpointConfig(
            path=args.path,
            host=args.host,
            port=args.port,
            user=args.user,
            password=SecretStr(password) if password else None,
            max_body_bytes=args.max_body_mb << 20,
        )
    except ValueError as exc:
        print(f"invalid option: {exc}", flush=True)
        return 2
    try:
        server = create_server(config)
    except (OSError, ServerException) as exc:
        print(f"cannot serve {args.path} on {args.host}:{args.port}: {exc}", flush=True)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on {server.url}", flush=True)
    _log.info("ClickHouse endpoint on %s, database %s", server.url, config.path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
