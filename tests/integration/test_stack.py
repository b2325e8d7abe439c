"""The local stack against real processes: a KRaft Kafka broker and the schema registry."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tradesignals_dagster.settings import STACK_FILE, Settings
from tradesignals_dagster.stack.errors import (
    BrokerStartError,
    JarResolveError,
    JavaMissingError,
    PortInUseError,
)
from tradesignals_dagster.stack.jars import KAFKA_VERSION, resolve_jars
from tradesignals_dagster.stack.kafka_broker import KafkaBroker
from tradesignals_dagster.stack.process import http_ok, pid_alive, port_in_use, tcp_open
from tradesignals_dagster.stack.stack import stack_down, stack_status, stack_up


def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions)], request_timeout=15)
    futures[name].result(timeout=30)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (an instance's own config or db path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port on 127.0.0.1 held open by this test, as another program would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_broker_answers_metadata(kafka_broker: KafkaBroker) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    metadata = admin.list_topics(timeout=10)
    assert [(b.id, b.host, b.port) for b in metadata.brokers.values()] == [
        (1, "127.0.0.1", kafka_broker.port)
    ]
    status = kafka_broker.status()
    assert status["running"] and status["ready"]
    assert status["version"] == KAFKA_VERSION
    assert Path(status["log"]).is_file()


def test_topic_produce_and_consume(kafka_broker: KafkaBroker, topic_name: str) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    _create_topic(bootstrap, topic_name, partitions=3)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = {f"key-{i}": f"value-{i}" for i in range(20)}
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for key, value in sent.items():
        producer.produce(topic_name, key=key, value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    assert errors == []

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    received: dict[str, str] = {}
    try:
        consumer.subscribe([topic_name])
        deadline = time.monotonic() + 60
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            raw_key, raw_value = msg.key(), msg.value()
            assert isinstance(raw_key, bytes) and isinstance(raw_value, bytes)
            received[raw_key.decode()] = raw_value.decode()
    finally:
        consumer.close()
    assert received == sent


def test_topics_are_not_auto_created(kafka_broker: KafkaBroker, topic_name: str) -> None:
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "message.timeout.ms": 3000})
    errors: list[KafkaError | None] = []
    producer.produce(topic_name, value=b"x", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(15)
    assert errors and errors[0] is not None
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_stack_up_writes_stack_json_and_is_idempotent(stack: Any, kafka_jar_dir: Path) -> None:
    path = stack.state_dir / STACK_FILE
    on_disk = json.loads(path.read_text())
    assert on_disk == stack.info
    assert on_disk["bootstrap_servers"] == stack.bootstrap_servers
    assert on_disk["schema_registry_url"].startswith("http://127.0.0.1:")
    for component in ("kafka", "schema_registry"):
        assert pid_alive(on_disk[component]["pid"])
        assert Path(on_disk[component]["log"]).is_file()

    plain = Settings(state_dir=stack.state_dir)
    assert plain.resolved_bootstrap_servers() == stack.bootstrap_servers
    assert plain.resolved_schema_registry_url() == stack.schema_registry_url
    assert http_ok(f"{stack.schema_registry_url}/subjects")

    again = stack_up(plain, jar_dir=kafka_jar_dir)
    assert again == on_disk  # the running stack is reported, not restarted
    assert json.loads(path.read_text()) == on_disk

    status = stack_status(plain)
    assert status["running"] is True
    assert status["kafka"]["pid"] == on_disk["kafka"]["pid"]
    assert status["schema_registry"]["pid"] == on_disk["schema_registry"]["pid"]


def test_broker_port_in_use_is_reported(tmp_path: Path, kafka_jar_dir: Path, listening_socket: int) -> None:
    broker = KafkaBroker(tmp_path, port=listening_socket, jar_dir=kafka_jar_dir)
    with pytest.raises(PortInUseError, match=str(listening_socket)) as info:
        broker.start()
    assert info.value.port == listening_socket
    assert broker.pid is None
    assert _processes_mentioning(str(broker.config_path)) == []


def test_stack_up_port_in_use_starts_nothing(
    tmp_path: Path, kafka_jar_dir: Path, listening_socket: int
) -> None:
    settings = Settings(state_dir=tmp_path)
    with pytest.raises(PortInUseError, match="schema registry"):
        stack_up(settings, registry_port=listening_socket, jar_dir=kafka_jar_dir)
    assert not (tmp_path / STACK_FILE).exists()
    assert _processes_mentioning(str(tmp_path)) == []


def test_broker_stop_leaves_no_process_and_restart_keeps_topics(
    tmp_path: Path, kafka_jar_dir: Path, topic_name: str
) -> None:
    broker = KafkaBroker(tmp_path, jar_dir=kafka_jar_dir)
    first = broker.start()
    try:
        _create_topic(broker.bootstrap_servers, topic_name)
        assert broker.stop() is True
        assert not pid_alive(first["pid"])
        assert _processes_mentioning(str(broker.config_path)) == []
        assert not tcp_open(first["port"]) and not port_in_use(first["port"])
        assert broker.status()["running"] is False
        assert broker.stop() is False

        second = broker.start()
        assert second["port"] == first["port"]  # the previous port is reused when free
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        assert topic_name in admin.list_topics(timeout=10).topics
    finally:
        broker.stop()
    assert _processes_mentioning(str(broker.config_path)) == []


def test_stack_down_leaves_no_process(tmp_path: Path, kafka_jar_dir: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    try:
        info = stack_up(settings, jar_dir=kafka_jar_dir)
        assert stack_status(settings)["running"] is True
    finally:
        stopped = stack_down(settings)
    assert stopped == {"clickhouse": True, "schema_registry": True, "kafka": True, "s3": True}
    for component in ("kafka", "schema_registry", "clickhouse"):
        assert not pid_alive(info[component]["pid"])
        assert not tcp_open(info[component]["port"])
    assert _processes_mentioning(str(tmp_path)) == []
    assert not (tmp_path / STACK_FILE).exists()
    status = stack_status(settings)
    assert status["running"] is False
    assert status["kafka"]["running"] is False
    assert status["schema_registry"]["running"] is False
    assert status["clickhouse"]["running"] is False
    assert stack_down(settings) == {
        "clickhouse": False,
        "schema_registry": False,
        "kafka": False,
        "s3": False,
    }


def test_missing_java_and_maven_are_reported(tmp_path: Path) -> None:
    with pytest.raises(JavaMissingError, match="no-such-java"):
        KafkaBroker(tmp_path, java="no-such-java").start()
    with pytest.raises(JavaMissingError, match="Maven"):
        resolve_jars(tmp_path / "lib", mvn="no-such-mvn")


def test_failed_jar_resolve_shows_maven_output(tmp_path: Path) -> None:
    fake_mvn = tmp_path / "mvn"
    fake_mvn.write_text("#!/bin/sh\necho '[ERROR] Could not resolve dependencies' >&2\nexit 1\n")
    fake_mvn.chmod(0o755)
    with pytest.raises(JarResolveError, match="Could not resolve dependencies"):
        resolve_jars(tmp_path / "lib", mvn=str(fake_mvn))
    assert not (tmp_path / "lib").exists()


def test_broker_that_dies_at_start_reports_its_log(tmp_path: Path, kafka_jar_dir: Path) -> None:
    with pytest.raises(BrokerStartError, match="Formatting the Kafka storage"):
        KafkaBroker(tmp_path, jar_dir=kafka_jar_dir, heap="1k").start()  # the JVM refuses it

    KafkaBroker(tmp_path, jar_dir=kafka_jar_dir).start()  # formats the storage
    assert KafkaBroker(tmp_path).stop() is True
    broker = KafkaBroker(tmp_path, heap="1k")
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match=r"(?s)exited during start-up.*heap") as info:
        broker.start()
    assert time.monotonic() - started < 30  # reported when the process died, not at the deadline
    assert str(broker.log_path) in str(info.value)
    assert broker.pid is None
