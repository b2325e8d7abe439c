"""The warehouse assets on the real broker and the local ClickHouse endpoint: materializing
sinks/<table> and clickhouse/<table> applies the table and deploys the sink through the process
runtime; bars flow in; the checks (no duplicated identity, complete against the topic, fresh)
pass, and a duplicated row makes the identity and completeness checks fail."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import fastavro
import pytest
import yaml
from confluent_kafka import Producer
from conftest import LocalStack

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.keys import sink_key, table_key
from tradesignals_dagster.deploy.process import ProcessRuntime
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.client import clickhouse_client

AVRO = {
    "type": "record",
    "name": "Bar",
    "namespace": "b",
    "fields": [
        {"name": "symbol", "type": "string"},
        {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "volume", "type": "long"},
    ],
}


@pytest.fixture
def env(stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    prefix = f"w{uuid.uuid4().hex[:10]}"
    reg = tmp_path / "registry"
    reg.mkdir()
    fields = [
        {"name": "symbol", "type": "string"},
        {"name": "timestamp", "type": "long", "logical_type": "timestamp-millis"},
        {"name": "volume", "type": "long"},
    ]
    app = {
        "StreamingApplication": {
            "id": prefix,
            "Topics": {
                f"{prefix}_bars": {
                    "num_partitions": 2,
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "value_schema": {"name": "Bar", "namespace": "b", "fields": fields},
                }
            },
            "Tables": {
                "bars": {
                    "topic_id": f"{prefix}_bars",
                    "database": f"db_{prefix}",
                    "order_by": ["symbol", "timestamp"],
                    "freshness_s": 300,
                    "sink": {"flush_interval_s": 0.2, "consumer_group": f"{prefix}-sink"},
                }
            },
        }
    }
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(app, sort_keys=False))
    for name, value in {
        "TRADESIGNALS_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": stack.schema_registry_url,
        "TRADESIGNALS_CLICKHOUSE_URL": stack.settings.resolved_clickhouse_url(),
    }.items():
        monkeypatch.setenv(name, value)
    settings = stack.settings.model_copy(
        update={"registry": reg, "pipelines_dir": tmp_path / "pipelines", "state_dir": tmp_path / "state"}
    )
    return settings, prefix


def _produce(stack: LocalStack, topic: str, schema_id: int, n: int) -> None:
    parsed = fastavro.parse_schema(AVRO)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "linger.ms": 20})
    header = b"\x00" + schema_id.to_bytes(4, "big")
    now = int(time.time() * 1000)
    for i in range(n):
        buf = io.BytesIO()
        fastavro.schemaless_writer(
            buf, parsed, {"symbol": f"S{i % 7}", "timestamp": now - 1000 + i, "volume": i}
        )
        producer.produce(
            topic,
            key=f"S{i % 7}".encode(),
            value=header + buf.getvalue(),
            headers=[("ts-id", f"id-{i}".encode())],
        )
    assert producer.flush(60) == 0


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materializing_deploys_the_sink_and_checks_hold(stack: LocalStack, env: tuple[Settings, str]) -> None:
    settings, prefix = env
    topic = f"{prefix}_bars"
    defs = build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    runtime = ProcessRuntime(settings.state_dir)
    try:
        first = job.execute_in_process(
            asset_selection=[sink_key("bars"), table_key("bars")], raise_on_error=False
        )
        assert first.success, [e.message for e in first.all_events if e.is_failure]
        time.sleep(2)  # past the sink's start-up: it must still run
        assert runtime.status("sink.bars").running, runtime.logs("sink.bars", 40)
        table_md = first.asset_materializations_for_node("clickhouse__bars_table")[0].metadata
        assert table_md["rows"].value == 0
        assert _checks(first)["fresh"].passed is False  # an empty table is not fresh

        registry = SchemaRegistry(settings.schema_registry_config(), 10)
        latest = registry.latest(f"{topic}-value")
        assert latest is not None
        schema_id = latest.schema_id
        _produce(stack, topic, schema_id, 3_000)
        client = clickhouse_client(settings)
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline
            and client.query(f"SELECT count() FROM db_{prefix}.bars").result_rows[0][0] < 3_000
        ):
            time.sleep(0.5)
        time.sleep(1.5)  # the sink commits after the insert is acknowledged

        second = job.execute_in_process(asset_selection=[table_key("bars")], raise_on_error=False)
        assert second.success
        md = second.asset_materializations_for_node("clickhouse__bars_table")[0].metadata
        assert md["rows"].value == 3_000 and int(md["bytes_on_disk"].value) > 0  # type: ignore[arg-type]
        assert md["sink_lag"].value == 0
        checks = _checks(second)
        assert checks["no_duplicated_identity"].passed, checks["no_duplicated_identity"].metadata
        assert checks["complete_against_topic"].passed, checks["complete_against_topic"].metadata
        assert checks["complete_against_topic"].metadata["messages_in_window"].value == 3_000
        assert checks["fresh"].passed, checks["fresh"].metadata

        # a row inserted behind the sink's back: a duplicate identity, and an offset the topic lacks
        client.command(
            f"INSERT INTO db_{prefix}.bars (symbol, timestamp, volume, _ts_id, _partition, _offset) "
            "VALUES ('S1', now64(3), 1, 'id-1', 0, 0)"
        )
        third = _checks(job.execute_in_process(asset_selection=[table_key("bars")], raise_on_error=False))
        assert third["no_duplicated_identity"].passed is False
        assert third["no_duplicated_identity"].metadata["duplicates"].value == 1
        assert third["complete_against_topic"].passed is False
    finally:
        runtime.stop("sink.bars", timeout=30)
    assert runtime.status("sink.bars").state == "stopped"
