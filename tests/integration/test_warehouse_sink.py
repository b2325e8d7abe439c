"""The ClickHouse sink on the real broker and the local endpoint: rows arrive, SIGKILLs at
random moments neither lose nor double a message, poison goes to the dead-letter topic."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import fastavro
import yaml
from confluent_kafka import Consumer, Producer
from conftest import LocalStack
from test_pipelines_support import start_sink

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.client import clickhouse_client

FIELDS: list[dict[str, Any]] = [
    {"name": "symbol", "type": "string"},
    {"name": "sequence", "type": "long"},
    {"name": "timestamp", "type": "long", "logical_type": "timestamp-millis"},
    {"name": "close", "type": "bytes", "logical_type": "decimal", "precision": 12, "scale": 4},
]


def _setup(stack: LocalStack, tmp_path: Path, batch_rows: int) -> tuple[Settings, str, str, int]:
    """A registry with one 3-partition topic and its table, applied; settings, topic, db, schema id."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    topic, db = f"{prefix}_bars", f"db_{prefix}"
    reg = tmp_path / "registry"
    reg.mkdir()
    app_yaml = {
        "StreamingApplication": {
            "id": prefix,
            "Topics": {
                topic: {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "value_schema": {"name": "Bar", "namespace": "b", "fields": FIELDS},
                }
            },
            "Tables": {
                "bars": {
                    "topic_id": topic,
                    "database": db,
                    "order_by": ["symbol", "timestamp"],
                    "sink": {"batch_rows": batch_rows, "flush_interval_s": 0.2},
                }
            },
        }
    }
    (reg / "pipelines.yaml").write_text(yaml.safe_dump(app_yaml, sort_keys=False))
    settings = stack.settings.model_copy(update={"registry": reg})
    app = load_application(reg)
    control = ControlPlane.from_settings(settings)
    result = control.apply(control.plan(app))
    return settings, topic, db, result.schema_ids[f"{topic}-value"]


def _produce(
    stack: LocalStack, topic: str, schema_id: int, n: int, poison: dict[int, bytes] | None = None
) -> None:
    parsed = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Bar",
            "namespace": "b",
            "fields": [
                {"name": "symbol", "type": "string"},
                {"name": "sequence", "type": "long"},
                {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {
                    "name": "close",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 4},
                },
            ],
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    header = b"\x00" + schema_id.to_bytes(4, "big")
    for i in range(n):
        if poison and i in poison:
            producer.produce(topic, key=b"x", value=poison[i], headers=[("ts-id", f"poison:{i}".encode())])
            continue
        buf = io.BytesIO()
        record = {
            "symbol": f"SYM{i % 17}",
            "sequence": i,
            "timestamp": 1_700_000_000_000 + i * 1000,
            "close": Decimal("1.2500"),
        }
        fastavro.schemaless_writer(buf, parsed, record)
        producer.produce(
            topic,
            key=f"SYM{i % 17}".encode(),
            value=header + buf.getvalue(),
            headers=[("ts-id", f"SYM{i % 17}:{i}".encode())],
        )
        if i % 1_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def _counts(settings: Settings, db: str) -> tuple[int, int, int]:
    client = clickhouse_client(settings)
    row = client.query(
        f"SELECT count(), uniqExact(_ts_id), uniqExact(_partition, _offset) FROM {db}.bars"
    ).result_rows[0]
    return int(row[0]), int(row[1]), int(row[2])


def _wait_for(
    settings: Settings, db: str, n: int, timeout: float, proc: subprocess.Popen[bytes], log: Path
) -> tuple[int, int, int]:
    deadline = time.monotonic() + timeout
    counts = (0, 0, 0)
    while time.monotonic() < deadline:
        counts = _counts(settings, db)
        if counts[0] >= n:
            return counts
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"only {counts} of {n} rows after {timeout}s:\n{log.read_text()[-3000:]}")


def test_bars_reach_the_table_and_sigterm_drains(stack: LocalStack, tmp_path: Path) -> None:
    settings, topic, db, schema_id = _setup(stack, tmp_path, batch_rows=5_000)
    _produce(stack, topic, schema_id, 20_000)
    log = tmp_path / "sink.log"
    proc = start_sink(settings, "bars", log)
    try:
        assert _wait_for(settings, db, 20_000, 120, proc, log) == (20_000, 20_000, 20_000)
        row = (
            clickhouse_client(settings)
            .query(f"SELECT symbol, sequence, timestamp, close, _topic FROM {db}.bars WHERE sequence = 3")
            .result_rows[0]
        )
        assert (row[0], row[1], row[3], row[4]) == ("SYM3", 3, Decimal("1.25"), topic)
        assert row[2].year == 2023
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]


def test_sigkills_at_random_moments_leave_every_message_exactly_once(
    stack: LocalStack, tmp_path: Path
) -> None:
    settings, topic, db, schema_id = _setup(stack, tmp_path, batch_rows=2_000)
    total = 150_000
    _produce(stack, topic, schema_id, total)
    log = tmp_path / "sink.log"
    rng = random.Random(11)
    kills = 0
    while kills < 12:
        proc = start_sink(settings, "bars", log)
        time.sleep(rng.uniform(1.5, 4.0))  # start-up takes about 1 s: kills land mid-stream
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        kills += 1
    assert _counts(settings, db)[0] < total, "the kills came too late to test anything"
    proc = start_sink(settings, "bars", log)
    try:
        counts = _wait_for(settings, db, total, 180, proc, log)
        time.sleep(2)  # anything doubled would arrive now
        assert _counts(settings, db) == (total, total, total)
        assert counts[0] == total
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_poison_messages_go_to_the_dlq_and_the_rest_flow(stack: LocalStack, tmp_path: Path) -> None:
    settings, topic, db, schema_id = _setup(stack, tmp_path, batch_rows=1_000)
    header = b"\x00" + schema_id.to_bytes(4, "big")
    poison = {
        100: b"not avro at all",
        2_000: b"\x00" + (999_999).to_bytes(4, "big") + b"\x02x",
        3_000: header + b"\x02",  # truncated body: ClickHouse refuses it
    }
    _produce(stack, topic, schema_id, 5_000, poison)
    log = tmp_path / "sink.log"
    proc = start_sink(settings, "bars", log)
    try:
        assert _wait_for(settings, db, 5_000 - len(poison), 120, proc, log)[0] == 5_000 - len(poison)
        consumer = Consumer(
            {
                "bootstrap.servers": stack.bootstrap_servers,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([f"{topic}.dlq"])
        letters: dict[bytes, dict[str, bytes]] = {}
        deadline = time.monotonic() + 60
        while len(letters) < len(poison) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                headers = cast(list[tuple[str, Any]], msg.headers() or [])
                letters[msg.value() or b""] = {k: v for k, v in headers if isinstance(v, bytes)}
        consumer.close()
        assert set(letters) == set(poison.values())
        assert b"magic byte" in letters[b"not avro at all"]["error"]
        assert b"unknown to the schema registry" in letters[poison[2_000]]["error"]
        assert b"ClickHouse refused" in letters[poison[3_000]]["error"]
        assert _counts(settings, db)[0] == 5_000 - len(poison)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
