"""Pure helpers of the local ClickHouse endpoint: how an HTTP request becomes a statement.

Nothing here touches chdb or a socket, so each rule is unit-tested on its own: which URL
parameters are transport and which are ClickHouse settings, where an INSERT's data starts,
which output format a query asks for, how a request body is decompressed, and how an error
is rendered the way ClickHouse renders it (``Code: N. DB::Exception: ... (NAME)``).
"""

from __future__ import annotations

import base64
import gzip
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message

DEFAULT_FORMAT = "TabSeparated"
DEFAULT_DATABASE = "default"

# ClickHouse error codes the endpoint raises itself (names as in ClickHouse's ErrorCodes).
ERROR_NAMES: dict[int, str] = {
    1: "UNSUPPORTED_METHOD",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    81: "UNKNOWN_DATABASE",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    229: "QUERY_IS_TOO_LARGE",
    271: "CANNOT_DECOMPRESS",
    516: "AUTHENTICATION_FAILED",
    1001: "STD_EXCEPTION",
}

# URL parameters that steer the HTTP request rather than the query (ClickHouse's HTTP handler
# consumes them too), and HTTP-only settings that mean nothing to an in-process engine.
TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "query_id", "session_id", "session_timeout",
        "session_check", "user", "password", "quota_key", "buffer_size", "wait_end_of_query",
        "compress", "decompress", "client_protocol_version", "role", "enable_http_compression",
        "send_progress_in_http_headers", "cancel_http_readonly_queries_on_client_close",
        "add_http_cors_header",
    }
)  # fmt: skip
_HTTP_ONLY_PREFIXES = ("http_",)
# Statements whose answer is a result set, so the response names its format.
RESULT_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "("})

_COMMENTS = re.compile(r"(--[^\n]*(\n|$)|/\*.*?\*/|\s)+", re.DOTALL)
_FIRST_WORD = re.compile(r"\(|[A-Za-z]+")
_INSERT_FORMAT = re.compile(rb"\bFORMAT\s+([A-Za-z0-9_]+)", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(
    r"\bFORMAT\s+([A-Za-z0-9_]+)(\s+SETTINGS\b[^;]*)?\s*;?\s*$", re.IGNORECASE | re.DOTALL
)
_CODE = re.compile(r"Code:\s*(\d+)\.\s*(?:DB::Exception:\s*)?(.*)", re.DOTALL)
_NAME_SUFFIX = re.compile(r"\s*\(([A-Z][A-Z0-9_]+)\)\s*$")
_VERSION_SUFFIX = re.compile(r"\s*\(version [^)]*\)\s*$")
_INSERT_HEAD = 64 * 1024  # an INSERT statement and its FORMAT clause must start within this


class ServerException(Exception):
    """An error answered to the client as ClickHouse would: a code, a message, a name."""

    def __init__(self, code: int, message: str, name: str | None = None) -> None:
        self.code = code
        self.message = message.strip()
        self.name = name or ERROR_NAMES.get(code, "")
        super().__init__(f"Code: {code}. {self.message}")

    def body(self, version: str) -> bytes:
        """The response body ClickHouse sends: ``Code: N. DB::Exception: msg. (NAME) (version V)``."""
        name = f" ({self.name})" if self.name else ""
        return f"Code: {self.code}. DB::Exception: {self.message}{name} (version {version})\n".encode()


def exception_from_text(text: str) -> ServerException:
    """A :class:`ServerException` from chdb's error text, keeping ClickHouse's code and name.

    chdb reports ``Code: 60. DB::Exception: Unknown table ... (UNKNOWN_TABLE)``; a text without
    a code (a Python-level failure) becomes code 1001, STD_EXCEPTION.
    """
    match = _CODE.search(text)
    if match is None:
        return ServerException(1001, text or "unknown error in the embedded engine")
    message = _VERSION_SUFFIX.sub("", match.group(2).strip())
    name_match = _NAME_SUFFIX.search(message)
    name = name_match.group(1) if name_match else None
    if name_match:
        message = message[: name_match.start()]
    return ServerException(int(match.group(1)), message, name)


def http_status(code: int) -> int:
    """The HTTP status a ClickHouse server answers for an error code (its HTTP handler's map)."""
    if code == 194:  # REQUIRED_PASSWORD
        return 401
    if code in (192, 193, 516):  # UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED
        return 403
    if code in (27, 36, 62, 115, 117, 271, 89):
        return 400
    if code in (46, 47, 50, 60, 73, 81):
        return 404
    if code == 229:
        return 413
    if code in (1, 48):
        return 501
    return 500


def statement_kind(statement: str) -> str:
    """The statement's first keyword in upper case (``SELECT``, ``INSERT``...), comments skipped."""
    pos = 0
    match = _COMMENTS.match(statement)
    if match:
        pos = match.end()
    word = _FIRST_WORD.match(statement, pos)
    return word.group(0).upper() if word else ""


def output_format(statement: str, default_format: str | None) -> str:
    """The format the answer is in: the query's trailing ``FORMAT x``, else ``default_format``."""
    match = _TRAILING_FORMAT.search(statement)
    if match:
        return match.group(1)
    return default_format or DEFAULT_FORMAT


@dataclass(frozen=True)
class InsertSplit:
    """An ``INSERT ... FORMAT f`` statement cut from the data that follows it."""

    statement: str
    """The INSERT without its FORMAT clause (``INSERT INTO t (a, b) SETTINGS ...``)."""
    fmt: str
    data_offset: int
    """Where the data starts in the bytes that were split."""


def split_insert(raw: bytes) -> InsertSplit | None:
    """Split ``INSERT ... FORMAT f <data>`` into statement, format and data offset.

    The data starts after the format name, after spaces and tabs and one line break, the rule
    ClickHouse's parser applies. ``None`` when ``raw`` is not an INSERT with a FORMAT clause
    (``INSERT ... VALUES`` and ``INSERT ... SELECT`` run as ordinary statements).
    """
    head = raw[:_INSERT_HEAD]
    text = head.decode("latin-1")
    if statement_kind(text) != "INSERT":
        return None
    match = _INSERT_FORMAT.search(head)
    if match is None:
        return None
    pos = match.end()
    while pos < len(raw) and raw[pos : pos + 1] in (b" ", b"\t", b"\f"):
        pos += 1
    if raw[pos : pos + 1] == b"\r":
        pos += 1
    if raw[pos : pos + 1] == b"\n":
        pos += 1
    try:
        statement = raw[: match.start()].decode()
    except UnicodeDecodeError as exc:
        raise ServerException(36, f"The INSERT statement is not valid UTF-8: {exc}") from exc
    return InsertSplit(statement.rstrip(), match.group(1).decode(), pos)


@dataclass
class Request:
    """What one HTTP request asks of the engine."""

    statement: str
    database: str = DEFAULT_DATABASE
    default_format: str | None = None
    query_id: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    bind_params: dict[str, str] = field(default_factory=dict)
    insert_format: str | None = None
    data: bytes | memoryview | None = None

    @property
    def kind(self) -> str:
        """The statement's first keyword."""
        return statement_kind(self.statement)


def _is_transport(name: str) -> bool:
    return name in TRANSPORT_PARAMS or name.startswith(_HTTP_ONLY_PREFIXES)


def build_request(params: Mapping[str, str], body: bytes) -> Request:
    """The :class:`Request` from URL parameters and the (decompressed) body.

    As in ClickHouse, the statement is the ``query`` parameter followed by the body; for an
    ``INSERT ... FORMAT f`` the bytes after the format name are the data. ``param_<name>``
    parameters are query parameters (``{name:Type}``); other non-transport parameters are
    settings.
    """
    settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith("param_"):
            bind[name[len("param_") :]] = value
        elif not _is_transport(name):
            settings[name] = value
    request = Request(
        statement="",
        database=params.get("database") or DEFAULT_DATABASE,
        default_format=params.get("default_format") or None,
        query_id=params.get("query_id") or None,
        settings=settings,
        bind_params=bind,
    )
    query = params.get("query", "").encode()
    # The query parameter is parsed on its own, so an INSERT's data may start right after its
    # format name in the body (clickhouse-connect sends binary data that way).
    split = split_insert(query) if query else None
    if split is not None:
        request.data = query[split.data_offset :] + body if split.data_offset < len(query) else body
        raw = query
    else:
        raw = query + body if query else body
        split = split_insert(raw)
        if split is not None:
            request.data = memoryview(raw)[split.data_offset :]
    if split is not None:
        request.statement = split.statement
        request.insert_format = split.fmt
        return request
    try:
        request.statement = raw.decode()
    except UnicodeDecodeError as exc:
        raise ServerException(36, f"The query is not valid UTF-8: {exc}") from exc
    return request


def _lz4_frames(data: bytes, limit: int) -> bytes:
    """Decode concatenated LZ4 frames (clickhouse-connect compresses each block as a frame)."""
    import lz4.frame

    out = bytearray()
    rest = data
    while rest:
        decoder = lz4.frame.LZ4FrameDecompressor()
        out += decoder.decompress(rest, max_length=limit - len(out) + 1)
        if len(out) > limit:
            break
        if not decoder.eof:
            raise ServerException(271, "The lz4 request body ends inside a frame.")
        rest = decoder.unused_data
    return bytes(out)


def _zstd_frames(data: bytes, limit: int) -> bytes:
    """Decode concatenated zstd frames (one per block, as clickhouse-connect sends them)."""
    from backports import zstd

    out = bytearray()
    rest = data
    while rest and len(out) <= limit:
        decoder = zstd.ZstdDecompressor()
        out += decoder.decompress(rest, max_length=limit - len(out) + 1)
        if len(out) > limit:
            break
        if not decoder.eof:
            raise ServerException(271, "The zstd request body ends inside a frame.")
        rest = decoder.unused_data
    return bytes(out)


def decompress_body(data: bytes, encoding: str | None, limit: int) -> bytes:
    """The request body decoded from its ``Content-Encoding`` (lz4, zstd, gzip, deflate, br).

    ``limit`` caps the decoded size, so a small compressed body cannot exhaust memory.
    """
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return data
    try:
        if enc == "lz4":
            out = _lz4_frames(data, limit)
        elif enc == "zstd":
            out = _zstd_frames(data, limit)
        elif enc in ("gzip", "x-gzip", "deflate"):
            wbits = 47 if enc != "deflate" else 15  # 47: gzip or zlib header, auto-detected
            decoder = zlib.decompressobj(wbits)
            out = decoder.decompress(data, limit + 1)
            while decoder.unused_data and len(out) <= limit and enc != "deflate":
                rest = decoder.unused_data
                decoder = zlib.decompressobj(wbits)
                out += decoder.decompress(rest, limit + 1 - len(out))
        elif enc == "br":
            try:
                import brotli  # type: ignore[import-not-found, unused-ignore]
            except ImportError as exc:
                raise ServerException(89, "Content-Encoding br needs the brotli package.") from exc
            out = brotli.decompress(data)
        else:
            raise ServerException(89, f"Unknown Content-Encoding '{encoding}'.")
    except ServerException:
        raise
    except (OSError, ValueError, zlib.error, RuntimeError, gzip.BadGzipFile) as exc:
        raise ServerException(271, f"Cannot decompress the {enc} request body: {exc}") from exc
    if len(out) > limit:
        raise ServerException(229, f"The decompressed request body exceeds {limit} bytes.")
    return out


def credentials(headers: Mapping[str, str] | Message[str, str], params: Mapping[str, str]) -> tuple[str, str]:
    """The (user, password) of a request, from where ClickHouse's HTTP interface reads them.

    ``Authorization: Basic``, then the ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers,
    then the ``user`` / ``password`` URL parameters; no user means ``default``.
    """
    auth = headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServerException(516, "The Authorization header is not valid Basic credentials.") from exc
        user, _, password = decoded.partition(":")
        return user or "default", password
    if headers.get("X-ClickHouse-User") is not None:
        return headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key") or ""
    return params.get("user") or "default", params.get("password") or ""


def quote_literal(value: str) -> str:
    """``value`` as a ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
