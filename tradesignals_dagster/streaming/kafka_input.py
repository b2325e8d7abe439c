"""The ``kafka`` input: a consumer-group member that yields decoded batches and commits them.

* group: ``pipeline.consumer_group()`` with static membership (``group.instance.id`` =
  ``<pipeline>-<instance>``), so a restarted process takes its partitions back at once
  instead of waiting for the dead member's session to expire;
* offsets are committed by the runner only (``enable.auto.commit=false``), after the batch's
  outputs are acknowledged, or inside the transaction with ``exactly_once``;
* ``isolation.level=read_committed``: records of aborted upstream transactions are never seen;
* values are decoded in batch by :class:`~tradesignals_dagster.kafka.serde.AvroSerde`; messages
  written with another schema id are resolved through the schema registry by id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast, overload

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.streaming.batch import Batch
from tradesignals_dagster.streaming.errors import (
    ConsumerFencedError,
    FatalClientError,
    StreamingError,
    TopicMissingError,
    is_fatal,
    is_fenced_member,
)
from tradesignals_dagster.streaming.transform import Rejection


class _Keys(Sequence[bytes | None]):
    """Message keys, read only when needed (dead letters are rare; a key per message is not)."""

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages

    @overload
    def __getitem__(self, index: int) -> bytes | None: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes | None]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes | None] | None:
        if isinstance(index, slice):
            return [m.key() for m in self._messages[index]]
        return self._messages[index].key()

    def __len__(self) -> int:
        return len(self._messages)


def consumer_config(
    kafka_conf: dict[str, str],
    group_id: str,
    instance_id: str | None,
    session_timeout_ms: int,
) -> dict[str, Any]:
    """The consumer settings of a kafka input."""
    conf: dict[str, Any] = {
        **kafka_conf,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": session_timeout_ms,
        "max.poll.interval.ms": 300_000,
        # large fetches: with the 1 MB default per partition, small Avro trades starve the loop
        "queued.min.messages": 500_000,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "fetch.max.bytes": 64 * 1024 * 1024,
        "fetch.wait.max.ms": 50,
    }
    if instance_id:
        conf["group.instance.id"] = instance_id
    return conf


class KafkaSource:
    """Polls one topic as a consumer-group member (see the module docstring)."""

    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        serde: AvroSerde,
        *,
        on_assign: Callable[[set[int]], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.topic = topic
        self.serde = serde
        self.log = log or logging.getLogger("tradesignals.streaming")
        self._on_assign = on_assign
        self.assignment: set[int] = set()
        self._fatal: KafkaError | None = None
        self.consumer = Consumer({**conf, "on_commit": self._on_commit, "error_cb": self._on_error})
        self._callback_error: BaseException | None = None
        self.consumer.subscribe(
            [topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assignment = {tp.partition for tp in partitions}
        self.log.info(
            "partitions assigned", extra={"topic": self.topic, "partitions": sorted(self.assignment)}
        )
        if self._on_assign is not None and self.assignment:
            try:
                self._on_assign(set(self.assignment))
            except BaseException as exc:  # raised again from poll(): callbacks must not raise
                self._callback_error = exc

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self.assignment -= gone
        self.log.info("partitions revoked", extra={"topic": self.topic, "partitions": sorted(gone)})

    def _on_error(self, err: KafkaError) -> None:
        if is_fatal(err):
            if self._fatal is None:
                self._fatal = err
            return
        self.log.debug("consumer client error", extra={"topic": self.topic, "error": str(err)})

    def raise_if_fatal(self) -> None:
        """Raise :class:`FatalClientError` once librdkafka has declared the consumer unusable."""
        if self._fatal is not None:
            error = ConsumerFencedError if is_fenced_member(self._fatal) else FatalClientError
            raise error(
                f"consumer of {self.topic} failed fatally and cannot recover in this process: "
                f"{self._fatal.str()}; exiting so supervision restarts the pipeline"
            )

    def poll(self, max_messages: int, timeout_s: float) -> Batch | None:
        """The next batch (``None`` when nothing arrived within ``timeout_s``)."""
        msgs = self.consumer.consume(max_messages, timeout_s)
        self.raise_if_fatal()
        if self._callback_error is not None:
            err, self._callback_error = self._callback_error, None
            raise err
        if not msgs:
            return None
        errors = [m for m in msgs if m.error() is not None]
        if errors:
            for m in errors:
                self._message_error(cast(KafkaError, m.error()))
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                return None
        values = [m.value() for m in msgs]
        positions = cast(list[tuple[int, int]], [(m.partition(), m.offset()) for m in msgs])
        records, failures = self.serde.decode_batch(values)
        rejections = [Rejection(f.index, "decode", str(f.error), type(f.error).__name__) for f in failures]
        return Batch(
            source=self.topic,
            records=records,
            raw=values,
            keys=_Keys(msgs),
            positions=positions,
            rejections=rejections,
            offsets={p: o + 1 for p, o in positions},
        )

    def _message_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicMissingError(f"input topic {self.topic} does not exist; run `tradesignals apply`")
        if is_fatal(err):
            self._fatal = self._fatal or err
            self.raise_if_fatal()
        self.log.warning("consumer error", extra={"topic": self.topic, "error": str(err)})

    def offsets(self, offsets: dict[int, int]) -> list[TopicPartition]:
        """``{partition: next offset}`` as the TopicPartitions Kafka commits."""
        return [TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None and is_fatal(err):
            self._fatal = self._fatal or err
        elif err is not None:
            self.log.warning(
                "offset commit failed (the next checkpoint commits later offsets; a restart "
                "re-reads from the last commit that succeeded)",
                extra={"topic": self.topic, "error": str(err)},
            )

    def commit(self, offsets: dict[int, int], *, wait: bool = True) -> bool:
        """Commit ``offsets``; False (logged) when the group took the partitions away.

        ``wait=False`` sends the commit without waiting for the coordinator's answer: used
        between checkpoints, where a lost commit only means a longer replay after a crash
        (the next checkpoint commits later offsets). The last commit before stopping waits.
        """
        if not offsets:
            return True
        if not wait:
            try:
                self.consumer.commit(offsets=self.offsets(offsets), asynchronous=True)
                return True
            except KafkaException as exc:
                self._on_commit(exc.args[0], [])
                self.raise_if_fatal()
                return False
        for attempt in range(5):
            try:
                self.consumer.commit(offsets=self.offsets(offsets), asynchronous=False)
                return True
            except KafkaException as exc:
                err = exc.args[0]
                if is_fatal(err):
                    self._fatal = self._fatal or err
                    self.raise_if_fatal()
                if err.code() in (
                    KafkaError.REBALANCE_IN_PROGRESS,
                    KafkaError.ILLEGAL_GENERATION,
                    KafkaError.UNKNOWN_MEMBER_ID,
                    KafkaError.FENCED_INSTANCE_ID,
                ):
                    self.log.warning(
                        "offsets not committed: the partitions were reassigned (the new owner "
                        "re-reads them; outputs keep their identity)",
                        extra={"error": str(err)},
                    )
                    return False
                if not err.retriable() or attempt == 4:
                    raise StreamingError(f"cannot commit offsets of {self.topic}: {err}") from exc
                time.sleep(0.2 * (attempt + 1))
        return False

    def group_metadata(self) -> Any:
        """The consumer's group metadata, for ``send_offsets_to_transaction``."""
        return self.consumer.consumer_group_metadata()

    def caught_up(self) -> bool:
        """Whether the consumer owns partitions and has read everything in them: idle, not stuck."""
        return bool(self.assignment) and self._fatal is None and self.lag() == 0

    def lag(self) -> int:
        """Messages in the assigned partitions past the consumer's position."""
        if not self.assignment:
            return 0
        tps = [TopicPartition(self.topic, p) for p in sorted(self.assignment)]
        total = 0
        try:
            for tp in self.consumer.position(tps):
                low, high = self.consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
                pos = tp.offset if tp.offset >= 0 else low
                total += max(0, high - pos)
        except KafkaException:
            return total
        return total

    def close(self) -> None:
        """Close the consumer (static members keep their partitions until the session ends)."""
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            self.log.warning("consumer close failed", extra={"error": str(exc)})
