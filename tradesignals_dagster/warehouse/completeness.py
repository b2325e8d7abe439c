"""Whether a table holds exactly its topic's messages, partition by partition.

Offsets alone cannot say how many messages a range holds: a transactional producer leaves
commit markers (and aborted records) at offsets no consumer ever sees. So the comparison reads
the topic itself, ``read_committed``, over a bounded recent window per partition: the last
``window`` offsets below the sink group's committed offset (what the sink has acknowledged). In
that window every offset the topic delivers must be in the table once, unless the sink sent it
to the dead-letter topic (read from the DLQ's ``source_*`` headers); the table must hold no
offset the topic does not. Rows at or past the committed offset are not judged: the sink may
have inserted them and not committed yet.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tradesignals_dagster.registry.tables import StreamingTable
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.errors import WarehouseError

DEFAULT_WINDOW = 50_000
_TRANSIENT = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


@dataclass
class PartitionCompleteness:
    """One partition's window: what the topic holds, what the table holds, what was dead-lettered."""

    partition: int
    start: int
    committed: int
    in_topic: int = 0
    in_table: int = 0
    dead_lettered: int = 0
    missing: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    doubled: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every delivered offset is in the table once or in the DLQ, and nothing else is."""
        return not self.missing and not self.unexpected and not self.doubled


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )


def _offsets(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, timeout: float
) -> list[Any]:
    """The messages of ``[start, end)`` of one partition (markers and aborted records skipped)."""
    if end <= start:
        return []
    consumer.assign([TopicPartition(topic, partition, start)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = consumer.consume(num_messages=10_000, timeout=0.5)
        done = False
        for msg in batch:
            err = msg.error()
            if err is not None:
                done = done or err.code() == KafkaError._PARTITION_EOF
                continue
            if int(msg.offset() or 0) >= end:
                done = True
                break
            out.append(msg)
        position = consumer.position([TopicPartition(topic, partition)])[0].offset
        if done or position >= end:
            return out
    raise WarehouseError(f"reading {topic}[{partition}] offsets {start}-{end} timed out after {timeout:.0f}s")


def _committed(settings: Settings, table: StreamingTable, partitions: int) -> dict[int, int]:
    """The sink group's committed offsets; a coordinator still loading or moving is waited for."""
    consumer = _consumer(settings, table.consumer_group())
    tps = [TopicPartition(table.topic_id, p) for p in range(partitions)]
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=30)}
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                transient = err is not None and (err.retriable() or err.code() in _TRANSIENT)
                if not transient or time.monotonic() > deadline:
                    raise WarehouseError(f"committed offsets of {table.consumer_group()}: {err}") from exc
                time.sleep(0.3)
    finally:
        consumer.close()


def _dead_lettered(settings: Settings, table: StreamingTable, timeout: float) -> dict[int, set[int]]:
    """Offsets of the table's topic that its sink dead-lettered, by partition."""
    consumer = _consumer(settings, f"completeness-{uuid.uuid4().hex}")
    out: dict[int, set[int]] = {}
    try:
        meta = consumer.list_topics(table.dlq_topic(), timeout=30).topics.get(table.dlq_topic())
        if meta is None or meta.error is not None:
            return out
        for p in meta.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(table.dlq_topic(), p), timeout=30)
            for msg in _offsets(consumer, table.dlq_topic(), p, OFFSET_BEGINNING, high, timeout):
                headers = {k: v for k, v in msg.headers() or [] if isinstance(v, bytes)}
                if headers.get("table") == table.qualified().encode() and "source_offset" in headers:
                    partition = int(headers.get("source_partition", b"-1"))
                    out.setdefault(partition, set()).add(int(headers["source_offset"]))
    finally:
        consumer.close()
    return out


def check_completeness(
    settings: Settings,
    client: Client,
    table: StreamingTable,
    partitions: int,
    window: int = DEFAULT_WINDOW,
    timeout: float = 60.0,
) -> list[PartitionCompleteness]:
    """Compare the table with its topic over the last ``window`` committed offsets of each partition."""
    committed = _committed(settings, table, partitions)
    dead = _dead_lettered(settings, table, timeout)
    consumer = _consumer(settings, f"completeness-{uuid.uuid4().hex}")
    out = []
    try:
        for p in range(partitions):
            end = committed.get(p, -1)
            low, _ = consumer.get_watermark_offsets(TopicPartition(table.topic_id, p), timeout=30)
            start = max(low, end - window)
            result = PartitionCompleteness(p, start, max(end, 0))
            if end > 0:
                topic = {m.offset() for m in _offsets(consumer, table.topic_id, p, start, end, timeout)}
                rows = client.query(
                    f"SELECT _offset FROM {table.qualified()} "
                    "WHERE _partition = {p:Int32} AND _offset >= {a:Int64} AND _offset < {b:Int64}",
                    parameters={"p": p, "a": start, "b": end},
                ).result_rows
                stored = [int(r[0]) for r in rows]
                lettered = {o for o in dead.get(p, set()) if start <= o < end}
                result.in_topic, result.in_table, result.dead_lettered = (
                    len(topic),
                    len(stored),
                    len(lettered),
                )
                result.missing = sorted(topic - set(stored) - lettered)[:20]
                result.unexpected = sorted(set(stored) - topic)[:20]
                result.doubled = sorted(o for o, n in Counter(stored).items() if n > 1)[:20]
            out.append(result)
    finally:
        consumer.close()
    return out
