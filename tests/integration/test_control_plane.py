"""plan/apply against the real broker and the real schema registry service."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType
from confluent_kafka.schema_registry import SchemaRegistryClient

from tradesignals_dagster.cli import main
from tradesignals_dagster.control.apply import ControlPlane, PlanBlockedError
from tradesignals_dagster.kafka.admin import KafkaAdminError, KafkaUnavailableError
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import Settings


def write_registry(
    root: Path,
    prefix: str,
    *,
    retention_ms: int = 86_400_000,
    partitions: int = 2,
    trade_fields: list[dict[str, Any]] | None = None,
    reset: bool = False,
) -> Path:
    fields = trade_fields or [
        {"name": "symbol", "type": "string"},
        {"name": "price", "type": "bytes", "logical_type": "decimal", "precision": 12, "scale": 4},
    ]
    app = {
        "StreamingApplication": {
            "id": prefix,
            "Topics": {
                f"{prefix}_trades": {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "retention_ms": retention_ms,
                    "reset_topic_on_start": reset,
                    "value_schema": {"name": "Trade", "namespace": "t", "fields": fields},
                },
                f"{prefix}_bars": {
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "cleanup_policy": "compact",
                    "value_serializer": "json",
                },
            },
            "Pipelines": {
                f"{prefix}_p": {
                    "input": {"type": "kafka", "kafka_topic_id": f"{prefix}_trades"},
                    "output": {"type": "kafka", "topic_id": f"{prefix}_bars"},
                }
            },
        }
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.yaml").write_text(yaml.safe_dump(app))
    return root


@pytest.fixture
def prefix() -> str:
    return f"cp{uuid.uuid4().hex[:8]}"


def live_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(timeout=10)
    return {k: v.value for k, v in entries.items()}


def partitions_of(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return len(meta.topics[topic].partitions)


def test_apply_creates_topics_and_schemas_and_second_apply_is_empty(
    stack: Any, tmp_path: Path, prefix: str
) -> None:
    app = load_application(write_registry(tmp_path / "reg", prefix))
    control = ControlPlane.from_settings(stack.settings)
    mine = {t for t in [f"{prefix}_trades", f"{prefix}_bars", f"{prefix}_trades.dlq", f"{prefix}_p.state"]}

    first = control.plan(app)
    kinds = {(c.kind, c.target) for c in first.changes}
    assert {("create_topic", t) for t in mine} <= kinds
    assert ("register_schema", f"{prefix}_trades-value") in kinds
    control.apply(first)

    assert partitions_of(stack.bootstrap_servers, f"{prefix}_trades") == 2
    cfg = live_configs(stack.bootstrap_servers, f"{prefix}_trades")
    assert cfg["retention.ms"] == "86400000" and cfg["min.insync.replicas"] == "1"
    assert live_configs(stack.bootstrap_servers, f"{prefix}_bars")["cleanup.policy"] == "compact"
    assert live_configs(stack.bootstrap_servers, f"{prefix}_p.state")["cleanup.policy"] == "compact"
    sr = SchemaRegistryClient({"url": stack.schema_registry_url})
    latest = sr.get_latest_version(f"{prefix}_trades-value")
    assert latest.version == 1 and "Trade" in (latest.schema.schema_str or "")
    assert sr.get_compatibility(f"{prefix}_trades-value") == "BACKWARD"

    second = control.plan(app)
    assert second.changes == []
    assert not [n for n in second.notices if n.target in mine]


def test_a_plan_whose_topics_another_apply_created_meanwhile_still_applies(
    stack: Any, tmp_path: Path, prefix: str
) -> None:
    """Two pipelines that share a topic, deployed at once, each plan "create" for it; the second
    apply meets TOPIC_ALREADY_EXISTS (a deploy run failed so in CI). Same partitions: applied."""
    app = load_application(write_registry(tmp_path / "reg", prefix))
    control = ControlPlane.from_settings(stack.settings)
    first, second = control.plan(app), control.plan(app)
    control.apply(first)
    control.apply(second)  # every create_topic in it meets a topic that exists
    assert partitions_of(stack.bootstrap_servers, f"{prefix}_trades") == 2
    assert control.plan(app).changes == []


def test_a_topic_created_meanwhile_with_other_partitions_is_an_error_naming_both(
    stack: Any, tmp_path: Path, prefix: str
) -> None:
    control = ControlPlane.from_settings(stack.settings)
    plan = control.plan(load_application(write_registry(tmp_path / "a", prefix, partitions=2)))
    control.apply(control.plan(load_application(write_registry(tmp_path / "b", prefix, partitions=3))))
    expected = (
        rf"create topic {prefix}_(trades|p\.state): it was created meanwhile with 3 partition\(s\), not 2"
    )
    with pytest.raises(KafkaAdminError, match=expected):
        control.apply(plan)


def test_plan_after_editing_retention_shows_exactly_that_change(
    stack: Any, tmp_path: Path, prefix: str
) -> None:
    control = ControlPlane.from_settings(stack.settings)
    control.apply(control.plan(load_application(write_registry(tmp_path / "a", prefix))))

    edited = load_application(write_registry(tmp_path / "b", prefix, retention_ms=3_600_000))
    plan = control.plan(edited)

    assert [(c.kind, c.target, c.data["set"]) for c in plan.changes] == [
        ("alter_topic_config", f"{prefix}_trades", {"retention.ms": "3600000"})
    ]
    control.apply(plan)
    assert live_configs(stack.bootstrap_servers, f"{prefix}_trades")["retention.ms"] == "3600000"
    assert control.plan(edited).changes == []


def test_incompatible_schema_is_refused_naming_the_field(
    stack: Any,
    tmp_path: Path,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    control = ControlPlane.from_settings(stack.settings)
    control.apply(control.plan(load_application(write_registry(tmp_path / "a", prefix))))
    fields = [{"name": "symbol", "type": "string"}, {"name": "size", "type": "int"}]
    reg = write_registry(tmp_path / "b", prefix, trade_fields=fields)

    plan = control.plan(load_application(reg))
    assert [n.kind for n in plan.blockers] == ["incompatible_schema"]
    assert "size" in plan.blockers[0].summary
    with pytest.raises(PlanBlockedError):
        control.apply(plan)

    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", stack.schema_registry_url)
    assert main(["plan", "--registry", str(reg)]) == 1
    assert main(["apply", "--registry", str(reg)]) == 1
    out = capsys.readouterr()
    assert "'size'" in out.out + out.err and "nothing was applied" in out.err

    sr = SchemaRegistryClient({"url": stack.schema_registry_url})
    assert sr.get_versions(f"{prefix}_trades-value") == [1]


def test_compatible_schema_change_registers_version_2(stack: Any, tmp_path: Path, prefix: str) -> None:
    control = ControlPlane.from_settings(stack.settings)
    control.apply(control.plan(load_application(write_registry(tmp_path / "a", prefix))))
    fields: list[dict[str, Any]] = [
        {"name": "symbol", "type": "string"},
        {"name": "price", "type": "bytes", "logical_type": "decimal", "precision": 12, "scale": 4},
        {"name": "venue", "type": "string", "default": ""},
    ]
    plan = control.plan(load_application(write_registry(tmp_path / "b", prefix, trade_fields=fields)))
    assert [(c.kind, c.summary) for c in plan.changes] == [
        ("register_schema", "register version 2 (Trade, 3 fields)")
    ]
    result = control.apply(plan)
    sr = SchemaRegistryClient({"url": stack.schema_registry_url})
    assert (
        sr.get_latest_version(f"{prefix}_trades-value").schema_id
        == result.schema_ids[f"{prefix}_trades-value"]
    )


def test_fewer_partitions_grow_without_losing_data_and_shrink_is_only_reported(
    stack: Any, tmp_path: Path, prefix: str
) -> None:
    control = ControlPlane.from_settings(stack.settings)
    control.apply(control.plan(load_application(write_registry(tmp_path / "a", prefix, partitions=2))))
    topic = f"{prefix}_trades"
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    producer.produce(topic, b"kept", partition=0)
    assert producer.flush(10) == 0

    grow = control.plan(load_application(write_registry(tmp_path / "b", prefix, partitions=4)))
    assert [(c.kind, c.data) for c in grow.changes if c.target == topic] == [
        ("add_partitions", {"from": 2, "to": 4})
    ]
    control.apply(grow)
    assert partitions_of(stack.bootstrap_servers, topic) == 4
    consumer = Consumer(
        {"bootstrap.servers": stack.bootstrap_servers, "group.id": prefix, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    deadline, got = time.monotonic() + 20, None
    while got is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got = msg.value()
    consumer.close()
    assert got == b"kept"

    shrink = control.plan(load_application(write_registry(tmp_path / "c", prefix, partitions=1)))
    assert [c for c in shrink.changes if c.target == topic] == []
    assert [n.kind for n in shrink.notices if n.target == topic] == ["shrink_partitions"]


def test_reset_only_on_start_and_orphans_only_with_flag(stack: Any, tmp_path: Path, prefix: str) -> None:
    control = ControlPlane.from_settings(stack.settings)
    app = load_application(write_registry(tmp_path / "a", prefix, reset=True))
    control.apply(control.plan(app))
    topic = f"{prefix}_trades"
    plain = control.plan(app, topics={topic})
    assert plain.changes == [] and [n.kind for n in plain.notices] == ["reset_on_start"]
    on_start = control.plan(app, topics={topic}, on_start=True)
    assert [c.kind for c in on_start.changes] == ["reset_topic"]
    control.apply(on_start)
    assert partitions_of(stack.bootstrap_servers, topic) == 2

    orphan = f"{prefix}_orphan"
    control.admin.create(orphan, 1, 1, {})
    assert any(n.kind == "orphan_topic" and n.target == orphan for n in control.plan(app).notices)
    deleting = control.plan(app, delete_orphans=True)
    assert ("delete_topic", orphan) in {(c.kind, c.target) for c in deleting.changes}


def test_broker_down_is_a_clear_error_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        state_dir=tmp_path,
        bootstrap_servers=f"127.0.0.1:{port}",
        schema_registry_url=f"http://127.0.0.1:{port}",
        request_timeout_s=3,
    )
    app = load_application(write_registry(tmp_path / "r", "down"))
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
        ControlPlane.from_settings(settings).plan(app)
    assert time.monotonic() - started < 10


def test_cli_apply_on_the_flagship_registry_then_nothing_to_do(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).parent.parent.parent
    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", stack.schema_registry_url)
    monkeypatch.setenv("TRADESIGNALS_CLICKHOUSE_URL", stack.info["clickhouse_url"])  # the flagship's tables
    args = [
        "--registry",
        str(root / "registry"),
        "--pipelines",
        str(root / "pipelines"),
        "--state-dir",
        str(tmp_path),
    ]
    assert main(["apply", *args]) == 0
    first = capsys.readouterr().out
    assert "+ option_trades: create with 4 partition(s)" in first
    assert "+ option_trades_aggs-value: register version 1" in first
    assert main(["apply", *args]) == 0
    second = capsys.readouterr().out
    assert second.startswith("No changes")
    assert partitions_of(stack.bootstrap_servers, "option_trades_aggs") == 4
