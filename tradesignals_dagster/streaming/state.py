"""Processor state in Kafka: the compacted ``<pipeline>.state`` topic (key = the processor's
state key, by convention the pipeline's key field).

Why Kafka and not a file: a container that dies loses its disk, and the state must match the
committed input offsets exactly. The runner writes the snapshots of the symbols a batch
changed *after* the batch's outputs are acknowledged and *before* it commits the input offsets
(in the same transaction with ``exactly_once``), so after a crash:

* the state topic is never ahead of the outputs (no bar can be lost), and
* trades re-read from the last committed offset are either skipped by the processor's
  per-partition positions or reproduce bars with the same identity and content.

On start and on every partition assignment, :meth:`StateStore.load` reads the topic to its end
and returns the latest snapshot of each key; snapshots that carry ``positions`` are returned
only if they belong to one of the assigned source partitions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tradesignals_dagster.streaming.errors import StateRestoreError, TopicMissingError
from tradesignals_dagster.streaming.processors.base import StatefulProcessor, dirty_keys


class StateStore:
    """Reads and encodes the snapshots of one pipeline's processor."""

    def __init__(
        self,
        kafka_conf: dict[str, str],
        topic: str,
        pipeline_key: str,
        *,
        log: logging.Logger | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.kafka_conf = kafka_conf
        self.topic = topic
        self.pipeline_key = pipeline_key
        self.timeout_s = timeout_s
        self.log = log or logging.getLogger("tradesignals.streaming")

    def load(self, source_partitions: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """The latest snapshot per key (for ``source_partitions`` only, when given)."""
        wanted = None if source_partitions is None else set(source_partitions)
        started = time.monotonic()
        latest = self._read_latest()
        snapshots: list[dict[str, Any]] = []
        for key, value in latest.items():
            if value is None:
                continue
            try:
                snap = json.loads(value)
            except ValueError as exc:
                raise StateRestoreError(
                    f"state topic {self.topic}: key {key!r} holds invalid JSON: {exc}"
                ) from exc
            if not isinstance(snap, dict):
                raise StateRestoreError(f"state topic {self.topic}: key {key!r} is not a JSON object")
            positions = snap.get("positions")
            if wanted is None or not positions or any(int(p[0]) in wanted for p in positions):
                snapshots.append(snap)
        self.log.info(
            "state restored",
            extra={
                "state_topic": self.topic,
                "keys_read": len(latest),
                "snapshots": len(snapshots),
                "partitions": sorted(wanted) if wanted is not None else "all",
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return snapshots

    def _read_latest(self) -> dict[bytes | None, bytes | None]:
        consumer = Consumer(
            {
                **self.kafka_conf,
                "group.id": f"{self.pipeline_key}.state-restore",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        try:
            meta = consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise TopicMissingError(
                    f"state topic {self.topic} does not exist; run `tradesignals apply` to create it"
                )
            remaining: dict[int, int] = {}
            for p in meta.partitions:
                low, high = self._watermarks(consumer, p)
                if high > low:
                    remaining[p] = high
            latest: dict[bytes | None, bytes | None] = {}
            if not remaining:
                return latest
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in remaining])
            deadline = time.monotonic() + self.timeout_s
            while remaining:
                if time.monotonic() > deadline:
                    raise StateRestoreError(
                        f"state topic {self.topic}: partitions {sorted(remaining)} not read to the end "
                        f"within {self.timeout_s:.0f}s"
                    )
                for msg in consumer.consume(10_000, 0.5):
                    err = msg.error()
                    part = int(msg.partition() or 0)
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            remaining.pop(part, None)
                            continue
                        if _transient(err):
                            continue  # a broker just died: leadership moves, the read carries on
                        raise StateRestoreError(f"state topic {self.topic}: {err}")
                    latest[msg.key()] = msg.value()
                    end = remaining.get(part)
                    if end is not None and int(msg.offset() or 0) >= end - 1:
                        remaining.pop(part, None)
            return latest
        except KafkaException as exc:
            raise StateRestoreError(f"state topic {self.topic}: {exc}") from exc
        finally:
            consumer.close()

    def _watermarks(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        """Low and high watermark of a state partition, asked again while a broker failure
        moves its leadership (until the restore deadline)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self.timeout_s
                )
                return int(low), int(high)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not isinstance(err, KafkaError) or not _transient(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @staticmethod
    def changed(processor: StatefulProcessor) -> tuple[list[bytes | None], list[bytes | None]]:
        """Keys and JSON values of the snapshots of the keys ``processor`` changed."""
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        for key in sorted(dirty_keys(processor)):
            snap = processor.snapshot(key)
            keys.append(key.encode())
            values.append(None if snap is None else json.dumps(snap, separators=(",", ":")).encode())
        return keys, values


_TRANSIENT_CODES = {
    KafkaError._DESTROY_BROKER,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT,
}


def _transient(err: KafkaError) -> bool:
    """Errors a broker failure causes for a while: worth asking again, not a broken state."""
    return bool(err.retriable()) or err.code() in _TRANSIENT_CODES
