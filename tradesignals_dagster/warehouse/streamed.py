"""Answers sent while the engine still makes them: which ones, and how their chunks join.

chdb streams a query's result in chunks (``send_query``), but it writes each chunk as a whole
answer of its own: a RowBinaryWithNames chunk repeats the names, an ArrowStream chunk repeats the
schema and ends with its own end-of-stream marker. So only formats whose chunks concatenate into
the answer ClickHouse would send are streamed, each with its joiner:

* ``Native`` and ``JSONEachRow`` have no header or footer: chunks are sent as they are (the
  endpoint's tests compare the joined stream with the buffered answer byte for byte);
* ``ArrowStream`` (clickhouse-connect's ``query_arrow``/``query_arrow_stream``): the first chunk
  is sent without its end-of-stream marker, later chunks without their schema message (checked to
  be the first chunk's, byte for byte) nor their marker, and one marker ends the answer. Record
  batches are passed through untouched, compressed or not.

Everything else (and every statement that is not a SELECT) is answered in one piece, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

_CONTINUATION = b"\xff\xff\xff\xff"
ARROW_EOS = _CONTINUATION + b"\x00\x00\x00\x00"
"""The Arrow IPC end-of-stream marker (continuation token, zero metadata length)."""
STREAMED_KINDS = frozenset({"SELECT", "WITH", "("})
"""Statements chdb can stream (``SHOW``, ``DESCRIBE``... it refuses with error 36)."""


class SpliceError(Exception):
    """Chunks that do not join into one answer (a schema that changed between chunks)."""


def _first_message(chunk: bytes) -> bytes:
    """The first IPC message of an Arrow stream chunk: the schema (it has no body)."""
    if len(chunk) < 8 or chunk[:4] != _CONTINUATION:
        raise SpliceError("an ArrowStream chunk does not start with an IPC message")
    (size,) = struct.unpack_from("<i", chunk, 4)
    return chunk[: 8 + size]


def _without_eos(chunk: bytes) -> bytes:
    return chunk[: -len(ARROW_EOS)] if chunk.endswith(ARROW_EOS) else chunk


def join_arrow_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """One Arrow IPC stream from chdb's per-chunk streams (see the module docstring)."""
    schema: bytes | None = None
    for chunk in chunks:
        if schema is None:
            schema = _first_message(chunk)
            yield _without_eos(chunk)
            continue
        if _first_message(chunk) != schema:
            raise SpliceError("the result's Arrow schema changed between chunks")
        body = _without_eos(chunk[len(schema) :])
        if body:
            yield body
    if schema is not None:
        yield ARROW_EOS


def _as_is(chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield from chunks


JOINERS: dict[str, Callable[[Iterable[bytes]], Iterator[bytes]]] = {
    "native": _as_is,
    "jsoneachrow": _as_is,
    "arrowstream": join_arrow_stream,
}
"""Streamed output formats (lower case) and how their chunks join."""


def streamable(kind: str, fmt: str) -> bool:
    """Whether a statement of ``kind`` answering in ``fmt`` is streamed."""
    return kind in STREAMED_KINDS and fmt.lower() in JOINERS
