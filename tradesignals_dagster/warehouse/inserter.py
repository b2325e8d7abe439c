"""One partition's batch into ClickHouse: framing checks, deterministic insert tokens, poison
isolation.

Every insert carries ``insert_deduplication_token = "<topic>:<partition>:<first>-<last>"`` for
the offsets it holds, and the table keeps recent tokens (``non_replicated_deduplication_window``),
so inserting the same offset range again is a no-op. What an insert holds is a pure function of
the batch's messages: messages that are not Confluent Avro, or whose schema the registry does
not know, go to the dead-letter topic; the rest are cut into runs of one writer schema; a run
ClickHouse refuses for its data is halved until the offending messages are alone (and sent to
the dead-letter topic). Replaying a batch after a crash thus repeats the same inserts with the
same tokens, and ClickHouse drops the ones it already has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tradesignals_dagster.warehouse.errors import WarehouseError
from tradesignals_dagster.warehouse.frames import (
    container_file,
    encode_row,
    frame_of,
    wrapper_schema,
    zigzag,
)

FATAL_CODES = frozenset({60, 81, 192, 497, 516})
"""Unknown table or database, unknown user, access denied, bad credentials: retrying cannot help."""
TRANSIENT_CODES = frozenset({159, 160, 202, 209, 210, 241, 242, 252, 285, 394, 425, 439, 1000})
"""Timeouts, overload, memory, too many parts, read-only for now, cancelled: retry later."""


@dataclass
class Message:
    """What the sink keeps of one Kafka message."""

    offset: int
    value: bytes | None
    ts_id: bytes


@dataclass(frozen=True)
class DeadLetter:
    """A message the table cannot take, and why."""

    message: Message
    reason: str
    kind: str


class RetryLater(WarehouseError):
    """ClickHouse is down or overloaded: the batch must be retried as it is."""


class UnclassifiedError(RetryLater):
    """ClickHouse answered with an error that carries no code: maybe transient (a proxy's 502),
    maybe not; the sink retries it a bounded number of times, then stops with the reason."""


class Inserter:
    """Inserts batches of one table (columns known, writer schemas looked up once each)."""

    def __init__(
        self,
        client: Client,
        table: str,
        topic: str,
        columns: set[str],
        schema_by_id: Callable[[int], dict[str, Any]],
    ) -> None:
        self.client = client
        self.table = table
        self.topic = topic
        self.columns = columns
        self._schema_by_id = schema_by_id
        self._wrapped: dict[int, tuple[dict[str, Any], list[str]] | str] = {}
        self.inserts = 0

    def _writer(self, schema_id: int) -> tuple[dict[str, Any], list[str]] | str:
        """The wrapped writer schema and the column list for it, or why it cannot be used."""
        if schema_id not in self._wrapped:
            try:
                writer = self._schema_by_id(schema_id)
            except Exception as exc:
                if "not found" in str(exc).lower() or "40403" in str(exc):
                    self._wrapped[schema_id] = f"schema id {schema_id} is unknown to the schema registry"
                    return self._wrapped[schema_id]
                raise RetryLater(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
            if writer.get("type") != "record":
                self._wrapped[schema_id] = f"schema id {schema_id} is not a record schema"
            else:
                wrapped = wrapper_schema(writer)
                names = [f["name"] for f in wrapped["fields"] if f["name"] in self.columns]
                self._wrapped[schema_id] = (wrapped, names)
        return self._wrapped[schema_id]

    def insert(self, partition: int, messages: list[Message]) -> list[DeadLetter]:
        """Insert ``messages`` (one partition, ascending offsets); return the dead letters."""
        dead: list[DeadLetter] = []
        runs: list[tuple[int, list[Message]]] = []
        for msg in messages:
            framed = frame_of(msg.value)
            if framed.schema_id is None:
                dead.append(DeadLetter(msg, framed.reason or "unreadable", "framing"))
                continue
            writer = self._writer(framed.schema_id)
            if isinstance(writer, str):
                dead.append(DeadLetter(msg, writer, "schema"))
                continue
            if runs and runs[-1][0] == framed.schema_id:
                runs[-1][1].append(msg)
            else:
                runs.append((framed.schema_id, [msg]))
        prefix = zigzag(partition)
        for schema_id, run in runs:
            writer = self._writer(schema_id)
            assert not isinstance(writer, str)
            dead.extend(self._insert_run(partition, prefix, writer, run))
        return sorted(dead, key=lambda d: d.message.offset)

    def _insert_run(
        self, partition: int, prefix: bytes, writer: tuple[dict[str, Any], list[str]], run: list[Message]
    ) -> list[DeadLetter]:
        schema, names = writer
        rows = [encode_row(m.ts_id, prefix, m.offset, m.value or b"") for m in run]
        token = f"{self.topic}:{partition}:{run[0].offset}-{run[-1].offset}"
        try:
            self.client.raw_insert(
                self.table,
                names,
                container_file(schema, rows),
                fmt="Avro",
                settings={"insert_deduplication_token": token, "insert_deduplicate": 1},
            )
            self.inserts += 1
            return []
        except OperationalError as exc:
            raise RetryLater(f"insert into {self.table} did not get an answer: {exc}") from exc
        except DatabaseError as exc:
            code = getattr(exc, "code", None)
            if code in FATAL_CODES:
                raise WarehouseError(f"insert into {self.table} refused (code {code}): {exc}") from exc
            if code is None:
                raise UnclassifiedError(
                    f"insert into {self.table} failed without a ClickHouse error code: {exc}"
                ) from exc
            if code in TRANSIENT_CODES:
                raise RetryLater(f"insert into {self.table} failed for now (code {code}): {exc}") from exc
            if len(run) == 1:
                return [
                    DeadLetter(
                        run[0], f"ClickHouse refused the row (code {code}): {_first_line(exc)}", "insert"
                    )
                ]
        half = len(run) // 2
        return self._insert_run(partition, prefix, writer, run[:half]) + self._insert_run(
            partition, prefix, writer, run[half:]
        )


def _first_line(exc: Exception) -> str:
    text = str(exc)
    if "DB::Exception:" in text:
        text = text.split("DB::Exception:", 1)[1]
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
