"""Helpers shared by the pipeline integration tests (no tests of its own).

Each test builds its own registry in ``tmp_path`` whose topics and pipelines are prefixed
with a fresh uuid, copies the project's real ``app.py`` files into a matching pipelines
directory, and applies it with the control plane, so tests never share topics, groups or
state topics.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, KafkaException, TopicPartition

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.streaming.metrics import metrics_port_file
from tradesignals_dagster.streaming.runner import PipelineRunner, RunSummary

PROJECT = Path(__file__).resolve().parents[2]


def flagship_schema(name: str) -> dict[str, Any]:
    """The project's schema YAML for ``name`` without its subject (topics get prefixed)."""
    data = yaml.safe_load((PROJECT / "registry" / "schemas" / f"{name}.yaml").read_text())
    data.pop("subject", None)
    return data


@dataclass
class PipelineEnv:
    """A prefixed registry applied to the session's stack."""

    prefix: str
    root: Path
    settings: Settings
    app: StreamingApplication
    trades: str
    bars: str
    ingest: str
    bars_pipeline: str
    extra: dict[str, Any] = field(default_factory=dict)

    def reload(self) -> StreamingApplication:
        self.app = load_application(self.settings.registry, self.settings.pipelines_dir)
        return self.app

    def runner(self, key: str, **kwargs: Any) -> PipelineRunner:
        return PipelineRunner(self.app, key, self.settings, **kwargs)

    def serde(self, topic: str) -> AvroSerde:
        reg = SchemaRegistry(self.settings.schema_registry_config())
        latest = reg.latest(self.app.subjects[topic])
        assert latest is not None
        return AvroSerde(latest.schema, latest.schema_id, decimals="scaled_int")


def write_env(
    root: Path,
    stack: Any,
    *,
    partitions: int = 3,
    ingest_input: dict[str, Any] | None = None,
    ingest_config: dict[str, Any] | None = None,
    bars_config: dict[str, Any] | None = None,
    delivery: str = "at_least_once",
    apply: bool = True,
    replication: tuple[int, int] = (1, 1),
    clickhouse: Settings | None = None,
) -> PipelineEnv:
    """Write, load and apply a registry with an ingest and a bars pipeline; with ``clickhouse``
    (settings naming an endpoint), also a ``bars`` table fed from the bars topic in database
    ``db_<prefix>`` (``env.extra["table"]``)."""
    prefix = f"pt{uuid.uuid4().hex[:10]}"
    trades, bars = f"{prefix}_trades", f"{prefix}_bars"
    ingest, bars_key = f"{prefix}_ingest", f"{prefix}_vbars"

    def topic(schema: str) -> dict[str, Any]:
        return {
            "num_partitions": partitions,
            "replication_factor": replication[0],
            "min_insync_replicas": replication[1],
            "retention_ms": 86_400_000,
            "value_schema_id": schema,
        }

    app = {
        "StreamingApplication": {
            "id": prefix,
            "Topics": {trades: topic("option_trades"), bars: topic("option_trades_aggs")},
            "Pipelines": {
                ingest: {
                    "input": ingest_input
                    or {
                        "type": "synthetic",
                        "additional_metadata": {"symbols": "20", "seed": "5", "count": "1000"},
                    },
                    "output": {
                        "topic_id": trades,
                        "publisher_id": "opra",
                        "dataset_id": "option_trades",
                        "entitlements": ["opra-realtime", "internal"],
                        "additional_metadata": {"region": "test"},
                    },
                },
                bars_key: {
                    "delivery": delivery,
                    "input": {
                        "type": "kafka",
                        "kafka_topic_id": trades,
                        "consumer_group_id": f"{prefix}_group",
                    },
                    "output": {
                        "topic_id": bars,
                        "publisher_id": "tradesignals",
                        "dataset_id": "option_volume_bars",
                        "entitlements": ["internal"],
                    },
                },
            },
        }
    }
    if clickhouse is not None:
        app["StreamingApplication"]["Tables"] = {
            "bars": {
                "topic_id": bars,
                "database": f"db_{prefix}",
                "order_by": ["symbol", "timestamp"],
                "sink": {"batch_rows": 5_000, "flush_interval_s": 0.5},
            }
        }
    registry = root / "registry"
    pipelines = root / "pipelines"
    (registry / "schemas").mkdir(parents=True)
    for schema in ("option_trades", "option_trades_aggs"):
        (registry / "schemas" / f"{schema}.yaml").write_text(yaml.safe_dump(flagship_schema(schema)))
    (registry / "pipelines.yaml").write_text(yaml.safe_dump(app, sort_keys=False))
    for key, source, config in (
        (ingest, "option_trades_ingest", ingest_config or {}),
        (bars_key, "option_trade_volume_bars", bars_config or {"bar_volume": 500}),
    ):
        folder = pipelines / key
        folder.mkdir(parents=True)
        shutil.copy(PROJECT / "pipelines" / source / "app.py", folder / "app.py")
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    settings = Settings(
        registry=registry,
        pipelines_dir=pipelines,
        state_dir=root / "state",
        bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.schema_registry_url,
        clickhouse_url=clickhouse.clickhouse_url if clickhouse else None,
        clickhouse_password=clickhouse.clickhouse_password if clickhouse else None,
    )
    loaded = load_application(registry, pipelines)
    if apply:
        plane = ControlPlane.from_settings(settings)
        plane.apply(plane.plan(loaded))
    env = PipelineEnv(prefix, root, settings, loaded, trades, bars, ingest, bars_key)
    if clickhouse is not None:
        env.extra["table"] = f"db_{prefix}.bars"
    return env


def start_sink(settings: Settings, table: str, log: Path) -> subprocess.Popen[bytes]:
    """The ClickHouse sink of ``table`` as its own process, configured only by environment
    variables (the password included), as the deploy path runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    env.update(
        TRADESIGNALS_REGISTRY=str(settings.registry),
        TRADESIGNALS_STATE_DIR=str(settings.state_dir),
        TRADESIGNALS_BOOTSTRAP_SERVERS=settings.resolved_bootstrap_servers(),
        TRADESIGNALS_SCHEMA_REGISTRY_URL=settings.resolved_schema_registry_url(),
        TRADESIGNALS_CLICKHOUSE_URL=settings.resolved_clickhouse_url(),
    )
    if settings.clickhouse_password is not None:
        env["TRADESIGNALS_CLICKHOUSE_PASSWORD"] = settings.clickhouse_password.get_secret_value()
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tradesignals_dagster.warehouse.sink", "--table", table],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


# -- running pipelines ----------------------------------------------------------------------------


class ThreadRun:
    """A runner in a background thread; ``result`` is its summary or the exception it raised."""

    def __init__(self, runner: PipelineRunner) -> None:
        self.runner = runner
        self.result: RunSummary | BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.runner.run()
        except BaseException as exc:
            self.result = exc

    def stop(self, timeout: float = 30) -> RunSummary:
        self.runner.request_stop("test")
        return self.join(timeout)

    def join(self, timeout: float = 60) -> RunSummary:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "runner did not stop"
        if isinstance(self.result, BaseException):
            raise self.result
        assert self.result is not None
        return self.result


def start_process(
    env: PipelineEnv, key: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``pipelines/<key>/app.py`` exactly as the process supervisor does.

    A stale metrics port file (a SIGKILLed run leaves it) is removed first, so that
    :func:`wait_started` sees this process's own.
    """
    metrics_port_file(env.settings.state_dir, key).unlink(missing_ok=True)
    desired = desired_state(env.app, key, env.settings)
    log = (env.root / f"{key}.log").open("ab")
    proc_env = {**os.environ, **desired.env, **(extra_env or {})}
    return subprocess.Popen(desired.command, env=proc_env, cwd=desired.workdir, stdout=log, stderr=log)


def wait_started(env: PipelineEnv, key: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the pipeline has connected and serves metrics (its signal handlers are in place)."""
    port_file = metrics_port_file(env.settings.state_dir, key)
    wait_for(lambda: port_file.exists() or proc.poll() is not None, timeout, what=f"{key} to start")
    assert proc.poll() is None, f"{key} exited during start-up with {proc.returncode}"


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# -- reading topics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def end_offsets(env: PipelineEnv, topic: str) -> dict[int, int]:
    return KafkaAdmin(env.settings.kafka_config()).end_offsets(topic, partitions_of(env, topic))


def partitions_of(env: PipelineEnv, topic: str) -> int:
    return KafkaAdmin(env.settings.kafka_config()).describe({topic})[topic].partitions


def committed(env: PipelineEnv, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({**env.settings.kafka_config(), "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions_of(env, topic))]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    except KafkaException:  # coordinator still loading: nothing known yet
        return {}
    finally:
        consumer.close()


def caught_up(env: PipelineEnv, group: str, topic: str) -> bool:
    ends = end_offsets(env, topic)
    done = committed(env, group, topic)
    return all(done.get(p, -1) >= end for p, end in ends.items() if end > 0)


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def read_topic(env: PipelineEnv, topic: str, timeout: float = 20) -> list[Msg]:
    """Every committed message of ``topic`` (read until each partition's end)."""
    n = partitions_of(env, topic)
    consumer = Consumer(
        {
            **env.settings.kafka_config(),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    out: list[Msg] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(n)])
        remaining = set(range(n))
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for m in consumer.consume(5000, 0.5):
                if m.error() is not None:
                    remaining.discard(m.partition())
                    continue
                raw = m.headers() or []
                pairs = raw.items() if isinstance(raw, dict) else raw
                headers = {k: _text(v) for k, v in pairs}
                topic_name, partition, offset = m.topic(), m.partition(), m.offset()
                assert topic_name is not None and partition is not None and offset is not None
                out.append(Msg(topic_name, partition, offset, m.key(), m.value(), headers))
        assert not remaining, f"partitions {remaining} of {topic} not read to the end"
    finally:
        consumer.close()
    return out


def decode_all(env: PipelineEnv, topic: str, msgs: list[Msg]) -> list[dict[str, Any]]:
    serde = env.serde(topic)
    return [serde.decode(m.value) for m in msgs if m.value is not None]


def bar_key(bar: dict[str, Any]) -> tuple[str, int]:
    return bar["symbol"], bar["sequence"]


def normalise_bars(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Bars by identity with decimals as exact strings (replay files vs decoded messages)."""
    from decimal import Decimal

    out = {}
    for row in rows:
        clean = {}
        for k, v in row.items():
            if isinstance(v, Decimal):
                v = str(v)
            clean[k] = v
        out[bar_key(clean)] = clean
    return out


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            yield json.loads(line)


def scaled_to_str(bars: list[dict[str, Any]], scale: int = 4) -> list[dict[str, Any]]:
    """Decoded bars (scaled-int prices) in the replay file's JSON form (decimal strings)."""
    from decimal import Decimal

    out = []
    for bar in bars:
        b = copy.copy(bar)
        for k in ("open", "high", "low", "close", "price"):
            b[k] = str(Decimal(b[k]).scaleb(-scale))
        out.append(b)
    return out
