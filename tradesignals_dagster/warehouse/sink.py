"""The continuous sink of one registry table: a topic into ClickHouse, exactly once.

Run as ``python -m tradesignals_dagster.warehouse.sink --table <id>`` (the deploy runtime does,
supervised like a pipeline). Per Kafka partition, messages are buffered and flushed by rows,
bytes or time (``Tables.<id>.sink``). A flush of partition p covering offsets [f, l]:

1. commits offset f to Kafka with metadata ``pending:f-l`` (the batch about to be inserted);
2. inserts it with the token ``<topic>:p:f-l`` (see :mod:`.inserter`), retrying with backoff
   while ClickHouse is down;
3. commits offset l+1 with empty metadata, only after ClickHouse acknowledged (or, when the next
   batch of p is flushed, step 1 of that batch does it: its first offset is l+1).

One insert is in flight at a time, in a worker thread, while the main thread keeps consuming
and buffering the next batch; a flush first waits for the previous insert (and writes its dead
letters) before it records the next pending range, so there is never more than one pending range
per partition.

After a crash the consumer resumes at the committed offset. If its metadata says
``pending:f-l``, the first batch of that partition is cut at exactly l again, so it repeats the
interrupted insert with the same token and ClickHouse drops whatever of it already arrived:
every message is in the table once, without FINAL and without waiting for merges. The same
state (in the consumer group) is what the ClickHouse Kafka Connect sink keeps in KeeperMap.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.tables import StreamingTable
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.streaming.metrics import MetricsServer, PipelineMetrics, metrics_port_file
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.errors import WarehouseError
from tradesignals_dagster.warehouse.inserter import (
    Batch,
    DeadLetter,
    Inserter,
    RetryLater,
    UnclassifiedError,
)

PENDING = "pending:"
IDENTITY_HEADER = "ts-id"
MAX_BACKOFF_S = 10.0
MAX_UNCLASSIFIED_ATTEMPTS = 8
"""Inserts refused without an error code are retried this often (about 40 s), then the sink stops."""
log = logging.getLogger("tradesignals.sink")


def sink_key(table: str) -> str:
    """The runtime key of a table's sink (a '.' cannot occur in a pipeline id, so no clash)."""
    from tradesignals_dagster.deploy.workloads import sink_runtime_key

    return sink_runtime_key(table)


def pending_metadata(first: int, last: int) -> str:
    """The commit metadata that records a batch about to be inserted."""
    return f"{PENDING}{first}-{last}"


def parse_pending(metadata: str | None) -> tuple[int, int] | None:
    """``(first, last)`` of a pending batch recorded in commit metadata, else ``None``."""
    if not metadata or not metadata.startswith(PENDING):
        return None
    first, _, last = metadata[len(PENDING) :].partition("-")
    try:
        return int(first), int(last)
    except ValueError:
        return None


class StopDuringOutage(TradesignalsError):
    """Stopped while ClickHouse was unavailable: the pending batch is replayed on the next start."""

    exit_code = 0


@dataclass
class Buffer:
    """Messages of one partition waiting for their insert."""

    messages: Batch = field(default_factory=Batch)
    nbytes: int = 0
    since: float = 0.0
    cut_at: int | None = None  # a replayed batch must end exactly here


class TableSink:
    """Consumes a table's topic and inserts it, exactly once, until :meth:`stop`."""

    def __init__(self, app: StreamingApplication, table: StreamingTable, settings: Settings) -> None:
        self.table, self.settings = table, settings
        self.topic = table.topic_id
        self.metrics = PipelineMetrics(sink_key(table.key))
        self._stop = threading.Event()
        self.buffers: dict[int, Buffer] = {}
        self.consumer = Consumer(
            {
                **settings.kafka_config(),
                "group.id": table.consumer_group(),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "queued.min.messages": 500_000,
                "max.partition.fetch.bytes": 8 * 1024 * 1024,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "fetch.wait.max.ms": 50,
            }
        )
        self.producer = Producer({**settings.kafka_config(), "enable.idempotence": True, "acks": "all"})
        self.client = clickhouse_client(settings)
        registry = SchemaRegistry(settings.schema_registry_config(), settings.request_timeout_s)
        columns = {
            str(r[0])
            for r in self.client.query(
                "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String}",
                parameters={"d": table.database, "t": table.key},
            ).result_rows
        }
        if not columns:
            raise WarehouseError(
                f"table {table.qualified()} does not exist: run `tradesignals apply --table {table.key}`"
            )
        self.inserter = Inserter(self.client, table.qualified(), self.topic, columns, registry.schema_by_id)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"insert-{table.key}")
        self._inflight: tuple[Future[list[tuple[int, DeadLetter]]], dict[int, Batch], float] | None = None
        self._inserted: dict[int, Batch] = {}  # acknowledged, offset l+1 not yet committed

    def stop(self, reason: str = "") -> None:
        """Finish the current flush, insert what is buffered, commit, and return from :meth:`run`."""
        log.info("stop requested", extra={"reason": reason})
        self._stop.set()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            pending = parse_pending(tp.metadata)
            buf = self.buffers.setdefault(tp.partition, Buffer())
            if pending is not None:
                buf.cut_at = pending[1]
                log.info("replaying pending batch", extra={"partition": tp.partition, "range": pending})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.flush([tp.partition for tp in partitions if tp.partition in self.buffers])
        self.drain()
        for tp in partitions:
            self.buffers.pop(tp.partition, None)

    def run(self) -> int:
        """Consume, buffer and flush until stopped; 0 on a clean stop."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        cfg = self.table.sink
        try:
            while not self._stop.is_set():
                self._add_all(self.consumer.consume(num_messages=10_000, timeout=0.1))
                now = time.monotonic()
                due = [
                    p
                    for p, b in self.buffers.items()
                    if b.messages.offsets and b.cut_at is None and now - b.since >= cfg.flush_interval_s
                ]
                if due:
                    self.flush(due)
                elif self._inflight is not None and self._inflight[0].done():
                    self.drain()  # commit past the acknowledged insert now, not at the next flush
            self.flush([p for p, b in self.buffers.items() if b.messages.offsets and b.cut_at is None])
            self.drain()
        finally:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self.consumer.close()
            self.producer.flush(10)
        return 0

    def _add_all(self, msgs: list[Any]) -> None:
        """Buffer consumed messages (the per-message hot path: appends only)."""
        buffers, rows_limit, bytes_limit = (
            self.buffers,
            self.table.sink.batch_rows,
            self.table.sink.batch_bytes,
        )
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise TradesignalsError(f"Kafka consumer failed: {err}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(err)})
                continue
            partition = msg.partition()
            buf = buffers.get(partition)
            if buf is None:
                buf = buffers[partition] = Buffer()
            if buf.cut_at is not None:
                self._add_replayed(buf, msg)
                continue
            batch, value = buf.messages, msg.value()
            if not batch.offsets:
                buf.since = time.monotonic()
            batch.offsets.append(msg.offset())
            batch.values.append(value)
            batch.ts_ids.append(self._identity(msg))
            buf.nbytes += len(value) if value else 0
            if len(batch.offsets) >= rows_limit or buf.nbytes >= bytes_limit:
                self.flush([partition])

    def _identity(self, msg: Any) -> bytes:
        """The message's ts-id header (the runtime puts it last), else its topic position."""
        headers = msg.headers()
        if headers:
            key, val = headers[-1]
            if key == IDENTITY_HEADER and val:
                return bytes(val)
            for key, val in headers:
                if key == IDENTITY_HEADER and val:
                    return bytes(val)
        return f"{self.topic}:{msg.partition()}:{msg.offset()}".encode()

    def _add_replayed(self, buf: Buffer, msg: Any) -> None:
        """Buffer a message of a replayed batch, which must be cut exactly where it was cut."""
        partition, offset, value = msg.partition(), msg.offset(), msg.value()
        assert buf.cut_at is not None
        if offset > buf.cut_at and buf.messages.offsets:
            self.flush([partition])  # the replayed batch ended at a gap: cut it where it was cut
            buf = self.buffers[partition]
        if buf.cut_at is None:
            self._add_all([msg])
            return
        buf.messages.offsets.append(offset)
        buf.messages.values.append(value)
        buf.messages.ts_ids.append(self._identity(msg))
        buf.nbytes += len(value or b"")
        if offset >= buf.cut_at:
            self.flush([partition])

    def flush(self, partitions: Sequence[int]) -> None:
        """Start the exactly-once insert of the buffered batches of ``partitions``.

        Waits for the insert in flight first; commits the new pending ranges (and the end of
        the previous insert's batches), then hands the batches to the insert worker.
        """
        batches = {p: self.buffers[p].messages for p in partitions if self.buffers[p].messages.offsets}
        if not batches:
            return
        self._settle()
        offsets = {p: (b.offsets[-1] + 1, "") for p, b in self._inserted.items()}
        offsets |= {
            p: (b.offsets[0], pending_metadata(b.offsets[0], b.offsets[-1])) for p, b in batches.items()
        }
        self._commit(offsets)
        self._inserted = {}
        for p in batches:
            self.buffers[p] = Buffer()
        self._inflight = (self._worker.submit(self._insert_all, batches), batches, time.monotonic())

    def _insert_all(self, batches: dict[int, Batch]) -> list[tuple[int, DeadLetter]]:
        dead: list[tuple[int, DeadLetter]] = []
        for p, batch in batches.items():
            dead.extend((p, d) for d in self._insert_with_retry(p, batch))
        return dead

    def _settle(self) -> None:
        """Wait for the insert in flight; write its dead letters; remember its batches as done."""
        if self._inflight is None:
            return
        future, batches, started = self._inflight
        self._inflight = None
        dead = future.result()
        if dead:
            self._dead_letters(dead)
        self._inserted |= batches
        rows = sum(len(b) for b in batches.values())
        self.metrics.observe_batch(time.monotonic() - started, rows, rows - len(dead), len(dead), 0)

    def drain(self) -> None:
        """Wait for the insert in flight and commit past every inserted batch."""
        self._settle()
        if self._inserted:
            self._commit({p: (b.offsets[-1] + 1, "") for p, b in self._inserted.items()})
            self._inserted = {}

    def _insert_with_retry(self, partition: int, batch: Batch) -> list[DeadLetter]:
        delay, unclassified = 0.2, 0
        while True:
            try:
                return self.inserter.insert(partition, batch)
            except RetryLater as exc:
                if self._stop.is_set():
                    raise StopDuringOutage(str(exc)) from exc
                unclassified = unclassified + 1 if isinstance(exc, UnclassifiedError) else 0
                if unclassified >= MAX_UNCLASSIFIED_ATTEMPTS:
                    raise WarehouseError(
                        f"{exc} ({unclassified} attempts in a row); stopping: the pending batch of "
                        f"partition {partition} is replayed, exactly once, when the sink restarts"
                    ) from exc
                self.metrics.reconnects += 1
                log.warning("ClickHouse not available, retrying", extra={"error": str(exc), "in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _commit(self, offsets: dict[int, tuple[int, str]]) -> None:
        tps = [TopicPartition(self.topic, p, o, metadata=meta) for p, (o, meta) in offsets.items()]
        delay = 0.2
        while True:
            try:
                self.consumer.commit(offsets=tps, asynchronous=False)
                return
            except Exception as exc:
                log.warning("offset commit failed, retrying", extra={"error": str(exc)})
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _dead_letters(self, dead: list[tuple[int, DeadLetter]]) -> None:
        target = self.table.dlq_topic()
        for partition, letter in dead:
            log.warning(
                "dead letter",
                extra={"partition": partition, "offset": letter.message.offset, "reason": letter.reason},
            )
            self.producer.produce(
                target,
                value=letter.message.value,
                headers=[
                    ("error", letter.reason[:1000]),
                    ("error_type", letter.kind),
                    ("stage", "clickhouse_sink"),
                    ("source_topic", self.topic),
                    ("source_partition", str(partition)),
                    ("source_offset", str(letter.message.offset)),
                    ("table", self.table.qualified()),
                ],
            )
        if self.producer.flush(60) > 0:
            raise TradesignalsError(f"dead letters could not be written to {target}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a sink process: exit 0 on SIGTERM, 1 on failure, 2 on bad input."""
    from tradesignals_dagster.registry.application import load_app
    from tradesignals_dagster.settings import load_settings
    from tradesignals_dagster.streaming.entry import install_stop_signals
    from tradesignals_dagster.streaming.gc_policy import tune_for_streaming

    parser = argparse.ArgumentParser(prog="python -m tradesignals_dagster.warehouse.sink")
    parser.add_argument("--table", required=True, help="table id in the registry's Tables section")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    holder: dict[str, TableSink] = {}
    stopping = threading.Event()

    def request_stop(reason: str) -> None:
        stopping.set()
        if "sink" in holder:
            holder["sink"].stop(reason)

    install_stop_signals(request_stop)
    try:
        settings = load_settings()
        app = load_app(settings)
        if args.table not in app.tables:
            print(f"error: no table {args.table!r} in the registry at {settings.registry}", file=sys.stderr)
            return 2
        table = app.tables[args.table]
        logging.getLogger().setLevel(table.sink.log_level)
        sink = TableSink(app, table, settings)
        holder["sink"] = sink
        tune_for_streaming()
        if stopping.is_set():
            return 0
        server = MetricsServer(
            sink.metrics, port_file=metrics_port_file(settings.state_dir, sink_key(table.key))
        )
        server.start()
        try:
            return sink.run()
        finally:
            server.stop()
    except TradesignalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
