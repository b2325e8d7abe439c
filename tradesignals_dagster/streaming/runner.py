"""The pipeline runtime: the loop every ``pipelines/<id>/app.py`` runs (through :mod:`.entry`).

Per batch (at-least-once, the default)::

    poll N messages -> decode in batch -> validate -> process -> encode in batch
      -> produce outputs + dead letters (queued; the producer sends them as they come)
      -> every checkpoint_interval_s: produce state snapshots -> flush (all acknowledged)
         -> commit input offsets

Offsets are committed only after a flush has seen every earlier output acknowledged, so a
batch never waits for a broker round trip unless a checkpoint is due.

With ``delivery: exactly_once`` the produce steps run in one Kafka transaction that also holds
the input offsets (``send_offsets_to_transaction``); consumers read ``read_committed``. A
failed flush or transaction stops the process without committing: the supervisor restarts it
and it resumes from the last commit, restoring the processor's state from the state topic.

SIGTERM/SIGINT finish the current batch, flush, commit and exit 0. Finite feed inputs (a replay
file, a synthetic ``count``) exit 0 once drained. Logs are JSON lines (:mod:`.logging`);
metrics are served on 127.0.0.1 (:mod:`.metrics`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from tradesignals_dagster.control.topics import state_topic
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.kafka.serde import AvroSerde, EncodeError, key_serializer
from tradesignals_dagster.registry.models import StreamingApplication, StreamingPipeline
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.streaming.batch import Batch, feed_batch
from tradesignals_dagster.streaming.config import apply_overrides, load_factory, split_config
from tradesignals_dagster.streaming.errors import (
    ConsumerFencedError,
    PipelineConfigError,
    ProcessorError,
)
from tradesignals_dagster.streaming.inputs import (
    InputBatch,
    InputContext,
    PipelineInput,
    build_input,
)
from tradesignals_dagster.streaming.kafka_input import KafkaSource, consumer_config
from tradesignals_dagster.streaming.logging import get_logger
from tradesignals_dagster.streaming.metrics import MetricsServer, PipelineMetrics, metrics_port_file
from tradesignals_dagster.streaming.outputs import (
    KafkaOutput,
    build_headers,
    dead_letters,
    output_headers,
    producer_config,
)
from tradesignals_dagster.streaming.preflight import build_processor, check_topics, registered_schema_id
from tradesignals_dagster.streaming.processors.base import (
    BuildContext,
    Processor,
    ProcessorFactory,
    StatefulProcessor,
    is_stateful,
)
from tradesignals_dagster.streaming.records import RecordSchema, identity_function
from tradesignals_dagster.streaming.state import StateStore
from tradesignals_dagster.streaming.transform import BatchTransformer

StopReason = Literal["stopped", "exhausted"]

MAX_REJOINS = 3
"""How many fenced consumers a run replaces in :data:`REJOIN_WINDOW_S` before it gives up."""
REJOIN_WINDOW_S = 600.0


@dataclass
class RunSummary:
    """How a run ended and what it did."""

    pipeline: str
    reason: StopReason
    records_in: int
    records_out: int
    dlq: int
    batches: int
    seconds: float


class PipelineRunner:
    """Runs one pipeline of ``app`` until stopped (or until a finite input is drained).

    ``build`` makes the processor (default: ``build`` from ``pipelines/<id>/app.py``);
    ``overrides`` are applied to the pipeline's config (dotted keys, see :mod:`.config`).
    ``metrics_port`` None means ``$TRADESIGNALS_METRICS_PORT`` or a free port. Call
    :meth:`run` in any thread; :meth:`request_stop` (or setting ``stop``) ends it gracefully.
    """

    def __init__(
        self,
        app: StreamingApplication,
        pipeline_key: str,
        settings: Settings,
        build: ProcessorFactory | None = None,
        *,
        overrides: dict[str, Any] | None = None,
        metrics_port: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if pipeline_key not in app.pipelines:
            known = ", ".join(sorted(app.pipelines)) or "none"
            raise PipelineConfigError(f"no pipeline {pipeline_key!r} in the registry (known: {known})")
        self.app = app
        self.settings = settings
        self.pipeline: StreamingPipeline = app.pipelines[pipeline_key]
        self.key = pipeline_key
        self.stop = stop or threading.Event()
        self.log = get_logger(pipeline_key)
        pipe = self.pipeline
        config, self.options = split_config(apply_overrides(pipe.config, overrides))
        self.out_topic = pipe.output.topic_id or ""
        if not self.out_topic or self.out_topic not in app.topics:
            raise PipelineConfigError(
                f"pipeline {pipeline_key}: output topic {self.out_topic!r} is not in the registry"
            )
        if self.out_topic not in app.schemas:
            raise PipelineConfigError(
                f"pipeline {pipeline_key}: output topic {self.out_topic} has no Avro schema"
            )
        self.is_kafka = pipe.input.type == "kafka"
        self.in_topic = pipe.input.kafka_topic_id if self.is_kafka else None
        if self.is_kafka and (self.in_topic not in app.topics or self.in_topic not in app.schemas):
            raise PipelineConfigError(
                f"pipeline {pipeline_key}: input topic {self.in_topic!r} is not an Avro topic of the registry"
            )
        self.output_schema = app.schemas[self.out_topic]
        self.input_schema = app.schemas[self.in_topic] if self.in_topic else self.output_schema
        self.in_records = RecordSchema(self.input_schema)
        self.out_records = RecordSchema(self.output_schema)
        factory = build or load_factory(settings.pipelines_dir, pipeline_key)
        ctx = BuildContext(
            app, pipe, config, self.input_schema, self.output_schema, key_field=self.options.key_field
        )
        self.processor: Processor = build_processor(factory, ctx)
        self.stateful = is_stateful(self.processor)
        self.transformer = BatchTransformer(self.processor, self.in_records, self.options.dead_letter)
        try:
            self.identity = identity_function(
                self.out_records.field_names,
                getattr(self.processor, "record_id", None),
                self.options.identity_fields,
            )
        except ValueError as exc:
            raise PipelineConfigError(
                f"pipelines/{pipeline_key}/config.yaml: runtime.{exc} (topic {self.out_topic})"
            ) from None
        self.base_headers = output_headers(pipe.output)
        key_field = self.options.key_field
        self.key_field = key_field if key_field in self.out_records.by_name else None
        self.serialize_key = key_serializer(app.topics[self.out_topic].key_serializer)
        self.transactional = pipe.delivery == "exactly_once"
        self.dlq_topic = pipe.dlq_topic()
        self.state_topic = state_topic(pipeline_key)
        self.instance = self.options.instance_id or os.environ.get("TRADESIGNALS_INSTANCE") or "0"
        self.metrics = PipelineMetrics(pipeline_key)
        if metrics_port is None:
            metrics_port = int(os.environ.get("TRADESIGNALS_METRICS_PORT") or 0)
        self.metrics_port = metrics_port
        self.metrics_server: MetricsServer | None = None
        self._output: KafkaOutput | None = None
        self._kafka: KafkaSource | None = None
        self._new_source: Callable[[], KafkaSource] | None = None
        self._rejoins: list[float] = []
        self._feed: PipelineInput | None = None
        self._state: StateStore | None = None
        self._out_serde: AvroSerde | None = None
        self._sequence = 0
        self._pending_offsets: dict[int, int] = {}
        self._uncheckpointed = False
        self._last_checkpoint = time.monotonic()

    # -- lifecycle ----------------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        """Finish the current batch, commit and return from :meth:`run`."""
        if not self.stop.is_set():
            self.log.info("stopping", extra={"reason": reason})
        self.stop.set()

    def run(self) -> RunSummary:
        """Set up clients, loop over batches until stopped, then shut down cleanly."""
        started = time.monotonic()
        try:
            self._setup()
            reason = self._loop()
        finally:
            self._teardown()
        snap = self.metrics.snapshot()
        summary = RunSummary(
            self.key,
            reason,
            snap["records_in"],
            snap["records_out"],
            snap["dlq"],
            snap["batches"],
            round(time.monotonic() - started, 3),
        )
        self.log.info("pipeline stopped", extra={"reason": reason, **snap})
        return summary

    def _setup(self) -> None:
        settings, pipe = self.settings, self.pipeline
        kafka_conf = settings.kafka_config()
        registry = SchemaRegistry(settings.schema_registry_config(), settings.request_timeout_s)
        out_subject = self.app.subjects[self.out_topic]
        out_id = registered_schema_id(registry, out_subject, self.output_schema, self.out_topic)
        self._out_serde = AvroSerde(self.output_schema, out_id, decimals="scaled_int")
        uses = [t for t in (self.in_topic, self.out_topic, self.dlq_topic) if t]
        check_topics(
            KafkaAdmin(kafka_conf, settings.request_timeout_s),
            uses + ([self.state_topic] if self.stateful else []),
        )
        tx_id = f"{self.key}-{self.instance}" if self.transactional else None
        self._output = KafkaOutput(
            producer_config(
                kafka_conf,
                transactional_id=tx_id,
                linger_ms=self.options.linger_ms,
                compression=self.options.compression,
            ),
            self.log,
        )
        if self.transactional:
            self._output.init_transactions(self.options.flush_timeout_s)
        if self.stateful:
            self._state = StateStore(kafka_conf, self.state_topic, self.key, log=self.log)
        if self.is_kafka:
            assert self.in_topic is not None
            in_id = registered_schema_id(
                registry, self.app.subjects[self.in_topic], self.input_schema, self.in_topic
            )
            serde = AvroSerde(
                self.input_schema, in_id, decimals="scaled_int", writer_schema_resolver=registry.schema_by_id
            )
            conf = consumer_config(
                kafka_conf,
                pipe.consumer_group(),
                f"{self.key}-{self.instance}",
                self.options.session_timeout_ms,
            )
            self._new_source = partial(
                KafkaSource,
                conf,
                self.in_topic,
                serde,
                on_assign=self._restore if self.stateful else None,
                log=self.log,
            )
            self._kafka = self._new_source()
        else:
            if self._state is not None:
                self._restore(None)
            ctx = InputContext(
                pipeline=pipe,
                schema=self.output_schema,
                base_dir=(settings.pipelines_dir / self.key).resolve(),
                stop=self.stop,
                log=self.log,
            )
            self._feed = build_input(pipe, ctx)
            self._feed.open()
        port_file = metrics_port_file(settings.state_dir, self.key)
        self.metrics_server = MetricsServer(self.metrics, self.metrics_port, port_file).start()
        self.log.info(
            "pipeline started",
            extra={
                "input": self.in_topic or (self._feed.describe() if self._feed else pipe.input.type),
                "output": self.out_topic,
                "delivery": pipe.delivery,
                "dead_letter_topic": self.dlq_topic,
                "dead_letter_policy": self.options.dead_letter,
                "state_topic": self.state_topic if self.stateful else None,
                "batch_size": self.options.batch_size,
                "metrics_port": self.metrics_server.port,
                "output_schema_id": out_id,
            },
        )

    def _restore(self, partitions: set[int] | None) -> None:
        assert self._state is not None
        snapshots = self._state.load(partitions)
        if snapshots:
            processor: StatefulProcessor = self.processor  # type: ignore[assignment]
            processor.restore(snapshots)

    def _teardown(self) -> None:
        if self._feed is not None:
            self._feed.close()
        if self._kafka is not None:
            self._kafka.close()
        if self._output is not None:
            self._output.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()

    # -- the loop -----------------------------------------------------------------------------------

    def _loop(self) -> StopReason:
        try:
            reason = self._batches()
            if not self.transactional:
                self._checkpoint(final=True)  # only after a clean stop: every output is flushed
            return reason
        finally:
            self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        self.metrics.consumer_lag = self._lag()
        if self._feed is not None:
            self.metrics.reconnects = self._feed.reconnects

    def _batches(self) -> StopReason:
        opts = self.options
        next_lag = next_stats = time.monotonic()
        last_in = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                batch = self._poll(opts.batch_size, opts.poll_timeout_s)
            except ConsumerFencedError as exc:
                self._rejoin(exc)
                continue
            if batch is not None and len(batch):
                out, dlq, snaps = self._handle(batch)
                snaps += self._checkpoint_if_due()
                self.metrics.observe_batch(time.perf_counter() - t0, len(batch), out, dlq, snaps)
            else:
                self._checkpoint_if_due()  # a quiet input still gets its last batch committed
                if self._feed is not None and self._feed.exhausted:
                    return "exhausted"
            now = time.monotonic()
            if now >= next_lag:
                self._refresh_gauges()
                next_lag = now + 1.0
            if now >= next_stats:
                snap = self.metrics.snapshot()
                rate = (snap["records_in"] - last_in) / opts.stats_interval_s if last_in else None
                last_in = snap["records_in"]
                self.log.info("pipeline stats", extra={**snap, "records_in_per_s": rate})
                next_stats = now + opts.stats_interval_s
        return "stopped"

    def _rejoin(self, exc: ConsumerFencedError) -> None:
        """Replace a consumer fenced by its own rejoin (see :class:`ConsumerFencedError`) with a
        new one, as a restart would but without one: outputs and state are flushed first, the
        uncommitted offsets are dropped (the new member re-reads from the last commit; a
        stateful processor skips what it already applied, others re-send the same identities).
        More than :data:`MAX_REJOINS` in :data:`REJOIN_WINDOW_S` means another process really
        holds the membership: then, and with ``exactly_once``, the error ends the pipeline."""
        now = time.monotonic()
        self._rejoins = [t for t in self._rejoins if now - t < REJOIN_WINDOW_S] + [now]
        if self.transactional or self._new_source is None or len(self._rejoins) > MAX_REJOINS:
            raise exc
        self.log.warning(
            "consumer fenced after losing its group session; starting a new group member in this process",
            extra={"error": str(exc), "rejoins": len(self._rejoins), "max_rejoins": MAX_REJOINS},
        )
        assert self._output is not None
        self._produce_state()
        self._output.flush(self.options.flush_timeout_s)
        self._pending_offsets.clear()
        self._uncheckpointed = False
        if self._kafka is not None:
            self._kafka.close()
        self._kafka = None
        self._kafka = self._new_source()
        self.metrics.reconnects += 1

    def _lag(self) -> int:
        if self._kafka is not None:
            return self._kafka.lag()
        return self._feed.backlog() if self._feed is not None else 0

    def _poll(self, max_records: int, timeout_s: float) -> Batch | None:
        if self._kafka is not None:
            return self._kafka.poll(max_records, timeout_s)
        assert self._feed is not None
        got = self._feed.read(max_records, timeout_s)
        part = got if isinstance(got, InputBatch) else InputBatch(list(got))
        if not len(part):
            return None
        batch = feed_batch(part, self._feed.typed, self.in_records, self._feed.describe(), self._sequence)
        self._sequence += len(batch)
        return batch

    def _handle(self, batch: Batch) -> tuple[int, int, int]:
        """Transform and produce one batch (committed inside it with exactly_once, else at the next
        checkpoint); returns (outputs, dead letters, snapshots)."""
        assert self._output is not None and self._out_serde is not None
        result = self.transformer.run(batch.records, batch.positions, batch.rejections)
        outputs = result.outputs
        try:
            values = self._out_serde.encode_batch(outputs)
        except EncodeError as exc:
            raise ProcessorError(
                f"the processor produced a record that does not fit {self.out_topic}'s schema: {exc}"
            ) from exc
        keys = None
        if self.key_field is not None:
            kf, ser = self.key_field, self.serialize_key
            try:
                keys = [ser(r.get(kf)) for r in outputs]
            except EncodeError as exc:
                raise ProcessorError(f"output key {kf!r}: {exc}") from exc
        headers = build_headers(self.base_headers, outputs, values, self.identity)
        dlq_values, dlq_keys, dlq_hdrs = dead_letters(batch, result.rejections, self.key)
        output = self._output
        snapshots = 0
        if self.transactional:
            output.begin_transaction()
            output.produce(self.out_topic, values, keys, headers)
            output.produce(self.dlq_topic, dlq_values, dlq_keys, dlq_hdrs)
            snapshots = self._produce_state()
            kafka = self._kafka
            output.commit_transaction(
                kafka.offsets(batch.offsets) if kafka is not None else None,
                kafka.group_metadata() if kafka is not None else None,
                self.options.flush_timeout_s,
            )
        else:
            output.produce(self.out_topic, values, keys, headers)
            output.produce(self.dlq_topic, dlq_values, dlq_keys, dlq_hdrs)
            output.serve()
            self._uncheckpointed = True
            pending = self._pending_offsets
            for partition, offset in batch.offsets.items():
                if offset > pending.get(partition, -1):
                    pending[partition] = offset
        if result.rejections:
            self.log.warning(
                "records dead-lettered",
                extra={
                    "count": len(result.rejections),
                    "dead_letter_topic": self.dlq_topic,
                    "first_error": result.rejections[0].error,
                    "dlq_total": self.metrics.dlq + len(result.rejections),
                },
            )
        return len(values), len(dlq_values), snapshots

    def _checkpoint_if_due(self) -> int:
        if self.transactional or not self._uncheckpointed:
            return 0
        if time.monotonic() - self._last_checkpoint < self.options.checkpoint_interval_s:
            return 0
        return self._checkpoint()

    def _checkpoint(self, *, final: bool = False) -> int:
        """At-least-once: make state and input offsets durable together, after the outputs.

        Runs every ``checkpoint_interval_s`` rather than every batch, so batches between two
        checkpoints never wait for the broker. A crash replays the input since the last
        checkpoint from the state of that checkpoint: the same outputs, with the same identity,
        are produced again; none is lost. Only the flush is waited for on the way; the offset
        commit is sent without waiting, except the ``final`` one before stopping.
        """
        assert self._output is not None
        snapshots = self._produce_state()
        self._output.flush(self.options.flush_timeout_s)
        if self._kafka is not None and self._pending_offsets:
            self._kafka.commit(dict(self._pending_offsets), wait=final)
        self._pending_offsets.clear()
        self._uncheckpointed = False
        self._last_checkpoint = time.monotonic()
        return snapshots

    def _produce_state(self) -> int:
        if self._state is None:
            return 0
        assert self._output is not None
        processor: StatefulProcessor = self.processor  # type: ignore[assignment]
        keys, values = StateStore.changed(processor)
        if keys:
            self._output.produce(self.state_topic, values, keys, None)
        return len(keys)
