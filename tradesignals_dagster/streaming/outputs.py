"""The ``kafka`` output: one producer per pipeline for output records, dead letters and state.

Every output message carries headers (all values UTF-8):

* ``publisher_id``, ``dataset_id`` and ``entitlements`` (comma-joined) from the registry's
  ``pipeline.output``, plus one header per ``output.additional_metadata`` entry;
* ``ts-id``: the record's deterministic identity (``symbol:sequence`` for a bar, the
  ``trade_id`` for a trade, see :func:`~tradesignals_dagster.streaming.records.
  identity_function`), so downstream stores can drop the duplicates at-least-once delivery
  may produce around a crash.

Dead letters keep the original value and key and carry ``error``, ``error_type``, ``stage``
(decode/validate/process), ``source_topic``, ``source_partition``, ``source_offset`` and
``pipeline``. The producer is idempotent (``acks=all``); with ``delivery: exactly_once`` it is
transactional and :meth:`KafkaOutput.commit_transaction` commits the input offsets with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException, Producer, TopicPartition

from tradesignals_dagster.registry.models import StreamingPipelineOutput
from tradesignals_dagster.streaming.errors import DeliveryError, FatalClientError, TransactionError, is_fatal
from tradesignals_dagster.streaming.records import IdentityFunction

if TYPE_CHECKING:
    from tradesignals_dagster.streaming.batch import Batch
    from tradesignals_dagster.streaming.transform import Rejection

IDENTITY_HEADER = "ts-id"
Header = tuple[str, str | bytes]
MAX_ERROR_HEADER = 4000


def output_headers(output: StreamingPipelineOutput) -> list[Header]:
    """The headers every record of ``output`` carries (without the identity)."""
    headers: list[Header] = []
    if output.publisher_id:
        headers.append(("publisher_id", output.publisher_id))
    if output.dataset_id:
        headers.append(("dataset_id", output.dataset_id))
    if output.entitlements:
        headers.append(("entitlements", ",".join(output.entitlements)))
    for key, value in output.additional_metadata.items():
        headers.append((str(key), "" if value is None else str(value)))
    return headers


def build_headers(
    base: Sequence[Header],
    records: Sequence[Mapping[str, Any]],
    values: Sequence[bytes],
    identity: IdentityFunction | None,
) -> list[list[Header]]:
    """Per-record headers: ``base`` plus the ``ts-id`` identity (a value hash without ``identity``)."""
    if identity is not None:
        return [[*base, (IDENTITY_HEADER, identity(r))] for r in records]
    return [[*base, (IDENTITY_HEADER, hashlib.blake2b(v, digest_size=16).hexdigest())] for v in values]


def dead_letter_value(raw: Any) -> bytes | None:
    """The bytes a dead letter carries: the original message, or JSON of a feed's row."""
    if raw is None or isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode()
    return json.dumps(raw, default=str, separators=(",", ":")).encode()


def dlq_headers(
    *,
    pipeline: str,
    error: str,
    error_type: str,
    stage: str,
    source: str,
    partition: int,
    offset: int,
) -> list[Header]:
    """The headers of a dead letter: why it was rejected and where it came from."""
    return [
        ("error", error[:MAX_ERROR_HEADER]),
        ("error_type", error_type),
        ("stage", stage),
        ("source_topic", source),
        ("source_partition", str(partition)),
        ("source_offset", str(offset)),
        ("pipeline", pipeline),
    ]


def dead_letters(
    batch: Batch, rejections: Sequence[Rejection], pipeline: str
) -> tuple[list[bytes | None], list[bytes | None], list[list[Header]]]:
    """Values, keys and headers of the dead letters of ``batch``'s ``rejections``.

    Kafka inputs keep the message's key; feed rows are keyed by their ``symbol`` if they have one.
    """
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    headers: list[list[Header]] = []
    for rej in rejections:
        raw = batch.raw[rej.index]
        values.append(dead_letter_value(raw))
        if batch.keys is not None:
            keys.append(batch.keys[rej.index])
        else:
            sym = raw.get("symbol") if isinstance(raw, Mapping) else None
            keys.append(sym.encode() if isinstance(sym, str) else None)
        partition, offset = batch.origin(rej.index)
        headers.append(
            dlq_headers(
                pipeline=pipeline,
                error=rej.error,
                error_type=rej.error_type,
                stage=rej.stage,
                source=batch.source,
                partition=partition,
                offset=offset,
            )
        )
    return values, keys, headers


def producer_config(
    kafka_conf: dict[str, str],
    *,
    transactional_id: str | None = None,
    linger_ms: float = 5,
    compression: str = "lz4",
) -> dict[str, Any]:
    """The producer settings the runtime uses (idempotent; transactional when asked)."""
    conf: dict[str, Any] = {
        **kafka_conf,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "compression.type": compression,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "batch.num.messages": 10_000,
        "delivery.report.only.error": True,
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
        conf["transaction.timeout.ms"] = 60_000
    return conf


class KafkaOutput:
    """Produces a pipeline's messages and reports whether the broker acknowledged them."""

    def __init__(self, conf: dict[str, Any], log: logging.Logger | None = None) -> None:
        self.log = log or logging.getLogger("tradesignals.streaming")
        self.transactional = "transactional.id" in conf
        self._errors: list[str] = []
        self._failed = 0
        self._fatal: Any = None
        self.producer = Producer({**conf, "on_delivery": self._on_delivery, "error_cb": self._on_error})

    def _on_error(self, err: Any) -> None:
        if is_fatal(err):
            self._fatal = self._fatal or err
        else:
            self.log.debug("producer client error", extra={"error": str(err)})

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed += 1
            if len(self._errors) < 5:
                self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def produce(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None,
        headers: Sequence[Sequence[Header]] | None,
    ) -> None:
        """Queue ``values`` (with their keys and headers) for ``topic``."""
        produce = self.producer.produce
        poll = self.producer.poll
        n = len(values)
        for i in range(n):
            key = keys[i] if keys is not None else None
            hdrs: Any = headers[i] if headers is not None else None
            while True:
                try:
                    produce(topic, values[i], key, headers=hdrs)
                    break
                except BufferError:
                    poll(0.05)

    def serve(self) -> None:
        """Serve delivery reports without waiting; raises :class:`DeliveryError` for any failure so far."""
        self.producer.poll(0)
        self._raise_failures()

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until everything queued is acknowledged; :class:`DeliveryError` otherwise."""
        remaining = self.producer.flush(timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} message(s) were not acknowledged within {timeout_s:.0f}s")
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._fatal is not None:
            raise FatalClientError(
                f"the producer failed fatally and cannot recover in this process: {self._fatal.str()}; "
                "exiting so supervision restarts the pipeline"
            )
        if self._failed:
            failed, errors = self._failed, "; ".join(self._errors)
            self._failed, self._errors = 0, []
            raise DeliveryError(f"{failed} message(s) were not delivered: {errors}")

    # -- transactions -------------------------------------------------------------------------------

    def init_transactions(self, timeout_s: float = 60.0) -> None:
        """Register the transactional id (fencing older instances, aborting their open work)."""
        try:
            self.producer.init_transactions(timeout_s)
        except KafkaException as exc:
            raise TransactionError(f"cannot initialise transactions: {exc}") from exc

    def begin_transaction(self) -> None:
        """Start the transaction of one batch."""
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:
            raise TransactionError(f"cannot begin a transaction: {exc}") from exc

    def commit_transaction(
        self,
        offsets: Iterable[TopicPartition] | None,
        group_metadata: Any,
        timeout_s: float = 60.0,
    ) -> None:
        """Add the input ``offsets`` (if any) to the transaction and commit it.

        A failure aborts the transaction and raises :class:`TransactionError`: the process
        must then exit (its in-memory state is ahead of what was committed) and a restart
        resumes from the last committed transaction.
        """
        try:
            if offsets is not None:
                self.producer.send_offsets_to_transaction(list(offsets), group_metadata, timeout_s)
            for attempt in range(3):
                try:
                    self.producer.commit_transaction(timeout_s)
                    break
                except KafkaException as exc:
                    if exc.args[0].retriable() and attempt < 2:
                        continue
                    raise
            self._raise_failures()
        except (KafkaException, DeliveryError) as exc:
            self._abort_quietly()
            raise TransactionError(f"the batch's transaction failed and was aborted: {exc}") from exc

    def _abort_quietly(self) -> None:
        try:
            self.producer.abort_transaction(10)
        except KafkaException as exc:
            self.log.warning("abort_transaction failed", extra={"error": str(exc)})

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is still queued (best effort)."""
        self.producer.flush(timeout_s)
