"""A thin, error-wrapping layer over confluent-kafka's AdminClient.

Every call has a deadline, so a broker that is down is reported within seconds, and every
client error is re-raised as a :class:`KafkaAdminError` naming the broker and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from tradesignals_dagster.kafka.client_logs import quiet_config
from tradesignals_dagster.kafka.errors import KafkaAreaError

# Errors a freshly created or grown topic answers with until its leaders are elected.
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


class KafkaAdminError(KafkaAreaError):
    """A Kafka admin operation failed; the message names the broker and the topic."""


class KafkaUnavailableError(KafkaAdminError):
    """The broker did not answer within the deadline."""


@dataclass(frozen=True)
class LiveTopic:
    """A topic as the cluster has it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class KafkaAdmin:
    """Admin operations with deadlines and readable errors."""

    def __init__(self, conf: dict[str, str], timeout_s: float = 10.0) -> None:
        self._conf = dict(conf)
        self._timeout = timeout_s
        self._client = AdminClient(quiet_config({**conf, "socket.connection.setup.timeout.ms": "5000"}))
        self.bootstrap = conf.get("bootstrap.servers", "?")

    def _drain_logs(self) -> None:
        """Hand librdkafka's queued log lines to the debug logger (an AdminClient only
        delivers them when polled), so they neither pile up nor reach the terminal."""
        self._client.poll(0)

    def _wait(self, futures: dict[Any, Any], what: str) -> dict[Any, Any]:
        out = {}
        try:
            for key, fut in futures.items():
                try:
                    out[key] = fut.result(timeout=self._timeout)
                except KafkaException as exc:
                    raise KafkaAdminError(f"{what} failed for {key}: {exc.args[0]}") from exc
                except TimeoutError as exc:
                    raise KafkaUnavailableError(
                        f"{what}: Kafka at {self.bootstrap} did not answer in {self._timeout:.0f}s"
                    ) from exc
        finally:
            self._drain_logs()
        return out

    def _retrying(self, call: Any, what: str) -> dict[Any, Any]:
        """Run ``call`` (which returns futures) until no result is a retriable error, such as
        NOT_LEADER right after a topic was created, or the deadline passes."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return self._wait(call(), what)
            except KafkaAdminError as exc:
                err = _kafka_error(exc)
                retriable = err is not None and (err.retriable() or err.code() in _TRANSIENT)
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _metadata(self) -> Any:
        try:
            return self._client.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            reason = err.str() if isinstance(err, KafkaError) else str(err)
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {self.bootstrap} within {self._timeout:.0f}s "
                f"({reason}); is it running? For the local stack: tradesignals stack up"
            ) from exc
        finally:
            self._drain_logs()

    def metadata(self) -> Any:
        """The cluster's metadata (brokers, topics, partitions with leader, replicas and ISR)."""
        return self._metadata()

    def _describe_configs(self, resources: list[ConfigResource], attempts: int = 3) -> dict[Any, Any]:
        """Topic configs, asked again when the request went to a broker that just died:
        librdkafka keeps routing to it until the controller fences it (about
        ``broker.session.timeout.ms``), and a pipeline starting then must not fail for it."""
        for attempt in range(attempts):
            try:
                return self._wait(self._client.describe_configs(resources), "describe configs")
            except KafkaUnavailableError:
                if attempt == attempts - 1:
                    raise
        return {}

    def describe(self, names: Iterable[str] | None = None) -> dict[str, LiveTopic]:
        """Partitions, replication factor and explicitly set configs of existing topics."""
        meta = self._metadata()
        wanted = set(names) if names is not None else None
        found = {
            name: t
            for name, t in meta.topics.items()
            if not name.startswith("__") and (wanted is None or name in wanted) and t.error is None
        }
        if not found:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in found]
        configs = self._describe_configs(resources)
        out = {}
        for res, entries in configs.items():
            t = found[res.name]
            parts = t.partitions
            rf = len(next(iter(parts.values())).replicas) if parts else 0
            values = {k: str(e.value) for k, e in entries.items() if e.value is not None}
            out[res.name] = LiveTopic(res.name, len(parts), rf, values)
        return out

    def create(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: dict[str, str],
        exist_ok: bool = False,
    ) -> None:
        """Create a topic and wait until its metadata shows every partition.

        With ``exist_ok``, a topic created meanwhile by someone else (two pipelines sharing a
        topic deployed at once, each applying its plan) counts as created when it has the
        partition count asked for; another count is still an error.
        """
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=replication_factor, config=dict(configs)
        )
        try:
            self._wait(self._client.create_topics([topic], operation_timeout=self._timeout), "create topic")
        except KafkaAdminError as exc:
            err = _kafka_error(exc)
            if not (exist_ok and err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
            live = self.describe([name]).get(name)
            if live is not None and live.partitions != partitions:
                raise KafkaAdminError(
                    f"create topic {name}: it was created meanwhile with {live.partitions} partition(s), "
                    f"not {partitions}; run `tradesignals plan` to see the difference"
                ) from exc
        self.wait_for_partitions(name, partitions)

    def wait_for_partitions(self, name: str, partitions: int) -> None:
        """Block until the cluster's metadata shows ``name`` with ``partitions`` partitions."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            meta = self._client.list_topics(name, timeout=self._timeout).topics.get(name)
            if meta is not None and meta.error is None and len(meta.partitions) == partitions:
                return
            time.sleep(0.05)
        raise KafkaUnavailableError(
            f"topic {name} did not show {partitions} partition(s) within {self._timeout:.0f}s"
        )

    def delete(self, names: list[str]) -> None:
        """Delete topics and wait until the broker confirms."""
        if names:
            self._wait(self._client.delete_topics(names, operation_timeout=self._timeout), "delete topic")

    def set_configs(self, name: str, values: dict[str, str]) -> None:
        """Set topic configs incrementally (others keep their values)."""
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in values.items()]
        res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        self._wait(self._client.incremental_alter_configs([res]), "alter configs")

    def grow(self, name: str, total_partitions: int) -> None:
        """Raise the partition count of a topic to ``total_partitions``."""
        self._wait(
            self._client.create_partitions(
                [NewPartitions(name, total_partitions)], operation_timeout=self._timeout
            ),
            "add partitions",
        )
        self.wait_for_partitions(name, total_partitions)

    def end_offsets(self, name: str, partitions: int) -> dict[int, int]:
        """The latest offset of each partition (messages ever written, before retention)."""
        result = self._retrying(
            lambda: self._list_offsets(name, partitions, OffsetSpec.latest), "list offsets"
        )
        return {tp.partition: info.offset for tp, info in result.items()}

    def start_offsets(self, name: str, partitions: int) -> dict[int, int]:
        """The earliest retained offset of each partition."""
        result = self._retrying(
            lambda: self._list_offsets(name, partitions, OffsetSpec.earliest), "list offsets"
        )
        return {tp.partition: info.offset for tp, info in result.items()}

    def _list_offsets(self, name: str, partitions: int, spec: Any) -> dict[Any, Any]:
        request = {TopicPartition(name, p): spec() for p in range(partitions)}
        return dict(self._client.list_offsets(request, request_timeout=self._timeout))

    def group_lag(self, group: str, topic: str, partitions: int) -> int | None:
        """Messages the consumer group has yet to commit on ``topic``; None if it never did.

        Committed offsets are read through a consumer that never joins the group: librdkafka's
        ListConsumerGroupOffsets admin call crashed the process (segfault in rdk:main) when a
        retry followed a COORDINATOR_LOAD_IN_PROGRESS answer.
        """
        consumer = Consumer(quiet_config({**self._conf, "group.id": group, "enable.auto.commit": "false"}))
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            deadline = time.monotonic() + self._timeout
            while True:
                try:
                    committed = consumer.committed(tps, timeout=self._timeout)
                    break
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    transient = err is not None and (err.retriable() or err.code() in _TRANSIENT)
                    if not transient or time.monotonic() > deadline:
                        raise KafkaAdminError(
                            f"committed offsets of group {group} on {topic}: {err}"
                        ) from exc
                    time.sleep(0.1)
        finally:
            consumer.close()
        if all(tp.offset < 0 for tp in committed):
            return None
        ends = self.end_offsets(topic, partitions)
        return sum(max(0, ends[tp.partition] - max(tp.offset, 0)) for tp in committed)


def _kafka_error(exc: KafkaAdminError) -> KafkaError | None:
    """The librdkafka error behind ``exc``, if it wraps one."""
    cause = exc.__cause__
    err = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
    return err if isinstance(err, KafkaError) else None
