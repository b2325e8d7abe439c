"""The endpoint's engine: one on-disk chdb database, used by one request at a time.

chdb runs ClickHouse in process and an on-disk path belongs to one process, so this object
is the only way in. Every statement runs under one lock (chdb connections are not meant for
concurrent use). Each request is stateless, as ClickHouse's HTTP interface is without a
session: the request's ``database`` and settings are applied before it runs and do not leak
into the next request. To make that cheap, connections are kept per database (chdb allows
several connections to one path in a process, each with its own current database and
settings), and a connection's settings are changed only where the request differs from what
that connection already has. A ``SET`` or ``USE`` sent as a statement changes connection
state behind this bookkeeping, so its connection is closed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chdb

from tradesignals_dagster.warehouse.protocol import (
    DEFAULT_DATABASE,
    Request,
    ServerException,
    exception_from_text,
    output_format,
    quote_literal,
)
from tradesignals_dagster.warehouse.streamed import JOINERS

_log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
"""Connections kept open, one per database recently asked for (least recently used closed)."""
_STATEFUL_KINDS = frozenset({"SET", "USE"})
# chdb's Python layer turns these "formats" into Python objects; they are not wire formats.
_PYTHON_ONLY_FORMATS = frozenset({"arrowtable", "dataframe", "datastore"})


def _nothing() -> None:
    pass


@dataclass
class Result:
    """What a statement answered: the bytes, their format (None: no result set) and a summary."""

    body: bytes
    fmt: str | None
    summary: dict[str, str]
    query_id: str
    chunks: Iterator[bytes] | None = None
    """A streamed answer (``body`` is empty): its bytes, in order, as the engine makes them."""
    cancel: Callable[[], None] = _nothing
    """Stop making a streamed answer nobody will read (the client went away); idempotent."""


@dataclass
class _Connection:
    conn: Any
    database: str
    applied: dict[str, str] = field(default_factory=dict)


class ChdbEngine:
    """The chdb database at ``path``, opened once for the life of the process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._anchor = self._open()  # holds the database open while connections come and go
        self._pool: OrderedDict[str, _Connection] = OrderedDict()
        rows = self._anchor.query("SELECT name, value, changed FROM system.settings", "TabSeparated")
        self._baseline: dict[str, tuple[str, bool]] = {}
        for line in rows.bytes().decode().splitlines():
            name, value, changed = line.split("\t")
            self._baseline[name] = (_unescape_tsv(value), changed == "1")
        head = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode()
        self.version, self.timezone = head.strip().split("\t")

    def _open(self) -> Any:
        try:
            return chdb.connect(str(self.path))
        except Exception as exc:  # chdb raises RuntimeError/ChdbError without a common base
            raise exception_from_text(str(exc)) from exc

    def close(self) -> None:
        """Close every connection; the database is released when the process ends."""
        with self._lock:
            for entry in self._pool.values():
                entry.conn.close()
            self._pool.clear()
            self._anchor.close()

    def execute(self, request: Request) -> Result:
        """Run one request under the lock; a failure raises :class:`ServerException`."""
        query_id = request.query_id or str(uuid.uuid4())
        with self._session(request) as entry:
            return self._run(entry, request, query_id)

    @contextlib.contextmanager
    def _session(self, request: Request) -> Iterator[_Connection]:
        """The request's connection, under the lock, with its settings applied; closed afterwards
        when the statement changed its state (SET, USE) or failed with code 81 (its database may
        be gone). Failures inside must be :class:`ServerException`."""
        with self._lock:
            entry = self._connection(request.database)
            discard = request.kind in _STATEFUL_KINDS
            try:
                self._apply_settings(entry, request.settings)
                yield entry
            except ServerException as exc:
                discard = discard or exc.code == 81
                raise
            finally:
                if discard:
                    self._discard(entry)

    def stream(self, request: Request, fmt: str) -> Result:
        """Run a SELECT whose answer (in ``fmt``, see :mod:`~tradesignals_dagster.warehouse.
        streamed`) is sent while it is made: the first chunk is there when this returns (an error
        before it raises :class:`ServerException`), the rest follows through ``Result.chunks``.

        A thread fetches every chunk under the lock as fast as chdb makes them, so the lock is
        held for as long as a buffered query holds it, not for as long as the client reads; a
        client that goes away cancels the query (``Result.cancel``), so an abandoned huge SELECT
        neither fills memory nor keeps the lock. An error after the first chunk raises from
        ``chunks``; an empty result is answered buffered (chdb streams no chunk at all, not even
        a format header).
        """
        query_id = request.query_id or str(uuid.uuid4())
        started = time.perf_counter_ns()
        pending: queue.SimpleQueue[bytes | BaseException | None] = queue.SimpleQueue()
        cancelled = threading.Event()
        threading.Thread(target=self._fetch_all, args=(request, fmt, pending, cancelled), daemon=True).start()
        first = pending.get()
        if isinstance(first, BaseException):
            raise first
        if first is None:
            return self.execute(request)
        elapsed = time.perf_counter_ns() - started  # to the first chunk; the rest is not known yet
        summary = _summary(read_rows=0, read_bytes=0, written_rows=0, written_bytes=0, elapsed_ns=elapsed)
        chunks = JOINERS[fmt.lower()](_drain(first, pending))
        return Result(b"", fmt, summary, query_id, chunks, cancelled.set)

    def _fetch_all(
        self,
        request: Request,
        fmt: str,
        out: queue.SimpleQueue[bytes | BaseException | None],
        cancelled: threading.Event,
    ) -> None:
        try:
            with self._session(request) as entry:
                try:
                    with entry.conn.send_query(request.statement, fmt, params=request.bind_params) as stream:
                        for chunk in stream:
                            if cancelled.is_set():
                                break  # leaving the block cancels the query
                            out.put(chunk.bytes())
                except Exception as exc:
                    raise exception_from_text(str(exc)) from exc
                if cancelled.is_set():
                    self._discard(entry)  # keep no connection that had a query cancelled on it
            out.put(None)
        except ServerException as exc:
            out.put(exc)
        except BaseException as exc:  # never leave the request waiting for a chunk
            _log.exception("streamed query failed")
            out.put(ServerException(1001, f"Internal error in the local ClickHouse endpoint: {exc}"))

    def _connection(self, database: str) -> _Connection:
        entry = self._pool.get(database)
        if entry is not None:
            self._pool.move_to_end(database)
            return entry
        conn = self._open()
        entry = _Connection(conn, database)
        if database != DEFAULT_DATABASE:
            try:
                conn.query(f"USE {_quote_ident(database)}", "TabSeparated")
            except Exception as exc:
                conn.close()
                raise exception_from_text(str(exc)) from exc
        self._pool[database] = entry
        while len(self._pool) > MAX_CONNECTIONS:
            _, oldest = self._pool.popitem(last=False)
            oldest.conn.close()
        return entry

    def _discard(self, entry: _Connection) -> None:
        if self._pool.get(entry.database) is entry:
            del self._pool[entry.database]
        entry.conn.close()

    def _apply_settings(self, entry: _Connection, wanted: dict[str, str]) -> None:
        """Make the connection's settings the baseline plus ``wanted``, in one SET statement."""
        for name in wanted:
            if name not in self._baseline:
                raise ServerException(115, f"Unknown setting '{name}'")
        assignments = []
        for name in entry.applied.keys() - wanted.keys():
            value, changed_at_start = self._baseline[name]
            assignments.append(f"{name} = {quote_literal(value) if changed_at_start else 'DEFAULT'}")
        for name, value in wanted.items():
            if entry.applied.get(name) != value:
                assignments.append(f"{name} = {quote_literal(value)}")
        if not assignments:
            return
        try:
            entry.conn.query("SET " + ", ".join(assignments), "TabSeparated")
        except Exception as exc:
            self._discard(entry)  # a half-applied SET leaves unknown state behind
            raise exception_from_text(str(exc)) from exc
        entry.applied = dict(wanted)

    def _run(self, entry: _Connection, request: Request, query_id: str) -> Result:
        started = time.perf_counter_ns()
        try:
            if request.insert_format is not None:
                return self._insert(entry, request, query_id, started)
            fmt = output_format(request.statement, request.default_format)
            if fmt.lower() in _PYTHON_ONLY_FORMATS:
                raise ServerException(73, f"Unknown output format {fmt}")
            res = entry.conn.query(request.statement, fmt, params=request.bind_params)
        except ServerException:
            raise
        except Exception as exc:
            raise exception_from_text(str(exc)) from exc
        body = res.bytes()
        summary = _summary(
            read_rows=res.rows_read(),
            read_bytes=res.bytes_read(),
            written_rows=res.rows_written(),
            written_bytes=res.bytes_written(),
            result_bytes=len(body),
            elapsed_ns=time.perf_counter_ns() - started,
        )
        return Result(body, fmt, summary, query_id)

    def _insert(self, entry: _Connection, request: Request, query_id: str, started: int) -> Result:
        assert request.insert_format is not None
        inserter = entry.conn.send_insert(request.statement, request.insert_format)
        try:
            if request.data:
                inserter.append(request.data)
            done = inserter.finish()
        except BaseException:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise
        summary = _summary(
            read_rows=0,
            read_bytes=0,
            written_rows=done.rows_written,
            written_bytes=done.bytes_written,
            result_bytes=0,
            elapsed_ns=time.perf_counter_ns() - started,
        )
        return Result(b"", None, summary, query_id)


def _drain(first: bytes, pending: queue.SimpleQueue[bytes | BaseException | None]) -> Iterator[bytes]:
    yield first
    while (item := pending.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _summary(**values: int) -> dict[str, str]:
    """``X-ClickHouse-Summary`` content; ClickHouse sends every figure as a string."""
    summary = {key: str(int(value)) for key, value in values.items()}
    summary["total_rows_to_read"] = summary["read_rows"]
    summary["result_rows"] = summary["written_rows"] if values["written_rows"] else "0"
    return summary


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _unescape_tsv(value: str) -> str:
    return value.replace("\\t", "\t").replace("\\n", "\n").replace("\\'", "'").replace("\\\\", "\\")
