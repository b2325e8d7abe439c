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
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tradesignals_dagster.warehouse.errors import WarehouseError
from tradesignals_dagster.warehouse.frames import (
    HEADER_BYTES,
    MAGIC,
    container_of,
    encode_rows,
    frame_of,
    wrapper_schema,
)

FATAL_CODES = frozenset({60, 81, 192, 497, 516})
"""Unknown table or database, unknown user, access denied, bad credentials: retrying cannot help."""
TRANSIENT_CODES = frozenset({159, 160, 202, 209, 210, 241, 242, 252, 285, 394, 425, 439, 1000})
"""Timeouts, overload, memory, too many parts, read-only for now, cancelled: retry later."""


@dataclass
class Message:
    """What the sink keeps of one Kafka message (a dead letter's content)."""

    offset: int
    value: bytes | None
    ts_id: bytes


@dataclass
class Batch:
    """One partition's messages, column-wise (the sink appends, the inserter slices)."""

    offsets: list[int] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    ts_ids: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def message(self, i: int) -> Message:
        return Message(self.offsets[i], self.values[i], self.ts_ids[i])

    def part(self, start: int, stop: int) -> Batch:
        return Batch(self.offsets[start:stop], self.values[start:stop], self.ts_ids[start:stop])

    def take(self, indices: list[int]) -> Batch:
        return Batch(
            [self.offsets[i] for i in indices],
            [self.values[i] for i in indices],
            [self.ts_ids[i] for i in indices],
        )

    @classmethod
    def of(cls, messages: list[Message]) -> Batch:
        return cls([m.offset for m in messages], [m.value for m in messages], [m.ts_id for m in messages])


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

    def insert(self, partition: int, batch: Batch | list[Message]) -> list[DeadLetter]:
        """Insert ``batch`` (one partition, ascending offsets); return the dead letters."""
        if isinstance(batch, list):
            batch = Batch.of(batch)
        values = pa.array(batch.values, pa.binary())
        schema_id = _one_schema_id(values)
        if schema_id is not None:
            writer = self._writer(schema_id)
            if not isinstance(writer, str):
                return self._insert_run(partition, writer, batch, values)
        dead: list[DeadLetter] = []
        runs: list[tuple[int, list[int]]] = []
        for i, value in enumerate(batch.values):
            framed = frame_of(value)
            if framed.schema_id is None:
                dead.append(DeadLetter(batch.message(i), framed.reason or "unreadable", "framing"))
                continue
            writer = self._writer(framed.schema_id)
            if isinstance(writer, str):
                dead.append(DeadLetter(batch.message(i), writer, "schema"))
                continue
            if runs and runs[-1][0] == framed.schema_id:
                runs[-1][1].append(i)
            else:
                runs.append((framed.schema_id, [i]))
        for schema_id, indices in runs:
            writer = self._writer(schema_id)
            assert not isinstance(writer, str)
            dead.extend(self._insert_run(partition, writer, batch.take(indices)))
        return sorted(dead, key=lambda d: d.message.offset)

    def _insert_run(
        self,
        partition: int,
        writer: tuple[dict[str, Any], list[str]],
        run: Batch,
        values: pa.Array | None = None,
    ) -> list[DeadLetter]:
        schema, names = writer
        if values is None:
            values = pa.array(run.values, pa.binary())
        body = encode_rows(run.ts_ids, partition, run.offsets, values)
        token = f"{self.topic}:{partition}:{run.offsets[0]}-{run.offsets[-1]}"
        try:
            self.client.raw_insert(
                self.table,
                names,
                container_of(schema, len(run), body),
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
                        run.message(0),
                        f"ClickHouse refused the row (code {code}): {_first_line(exc)}",
                        "insert",
                    )
                ]
        half = len(run) // 2
        return self._insert_run(partition, writer, run.part(0, half), values.slice(0, half)) + (
            self._insert_run(partition, writer, run.part(half, len(run)), values.slice(half))
        )


def _one_schema_id(array: pa.Array) -> int | None:
    """The writer schema id when every value is Confluent-framed with the same one, else None
    (the common case, checked column-wise; anything else takes the per-message path)."""
    if not len(array):
        return None
    if array.null_count or pc.min(pc.binary_length(array)).as_py() < HEADER_BYTES:
        return None
    headers = pc.unique(pc.binary_slice(array, 0, HEADER_BYTES))
    if len(headers) != 1:
        return None
    header = headers[0].as_py()
    return int.from_bytes(header[1:HEADER_BYTES], "big") if header[0] == MAGIC else None


def _first_line(exc: Exception) -> str:
    text = str(exc)
    if "DB::Exception:" in text:
        text = text.split("DB::Exception:", 1)[1]
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
