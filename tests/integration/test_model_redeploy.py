"""A promoted model reaches the live stream: the scoring pipeline runs as a real process on the
session's broker, publishes one signal per bar with the promoted version, and when a new
version is promoted the redeploy sensor's own function asks for it, the deploy restarts the
pipeline, and the next bars are scored with the new version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from test_models import MODEL, ROOT, SCORING, _materialize, _write_days

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.datasets.store import object_store
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.defs.sensors import redeploy_requests
from tradesignals_dagster.deploy.operations import deploy_pipeline
from tradesignals_dagster.deploy.process import ProcessRuntime
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.ml.store import ModelStore
from tradesignals_dagster.registry import load_application
from tradesignals_dagster.settings import Settings, load_settings
from tradesignals_dagster.streaming.preflight import registered_schema_id

BARS, SIGNALS = "option_trades_aggs", "option_bar_signals"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: Any) -> Iterator[dict[str, Any]]:
    """The flagship registry on the session broker, a file:// object store, a state dir of its own."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    monkeypatch.setenv("TRADESIGNALS_OBJECT_STORE_URL", store_dir.as_uri())
    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", stack.schema_registry_url)
    state = tmp_path / "state"
    settings = load_settings(registry=ROOT / "registry", pipelines_dir=ROOT / "pipelines", state_dir=state)
    resource = TradesignalsResource(
        registry=str(ROOT / "registry"), pipelines_dir=str(ROOT / "pipelines"), state_dir=str(state)
    )
    app = load_application(ROOT / "registry", ROOT / "pipelines")
    runtime = ProcessRuntime(settings.state_dir)
    try:
        yield {"store": store_dir, "settings": settings, "resource": resource, "app": app, "runtime": runtime}
    finally:
        runtime.stop(SCORING, timeout=30)


def _serde(settings: Settings, app: Any, topic: str) -> AvroSerde:
    registry = SchemaRegistry(settings.schema_registry_config(), settings.request_timeout_s)
    schema_id = registered_schema_id(registry, app.subjects[topic], app.schemas[topic], topic)
    return AvroSerde(app.schemas[topic], schema_id, decimals="scaled_int")


def _produce_bars(settings: Settings, serde: AvroSerde, symbol: str, first: int, count: int) -> None:
    """``count`` bars of ``symbol`` numbered from ``first``, one second apart, prices drifting."""
    producer = Producer(settings.kafka_config())
    t0 = 1_780_000_000_000
    for seq in range(first, first + count):
        price = 100_000 + (seq % 7) * 150 - (seq % 3) * 200
        bar = {
            "symbol": symbol,
            "sequence": seq,
            "start_timestamp": t0 + seq * 1000,
            "timestamp": t0 + seq * 1000 + 900,
            "open": price,
            "high": price + 100,
            "low": price - 100,
            "close": price,
            "volume": 500,
            "vwap": price / 10_000 * 1.001,
            "trade_count": 5 + seq % 4,
            "oi": 1000,
            "price": price,
        }
        producer.produce(
            BARS, serde.encode(bar), symbol.encode(), headers=[("ts-id", f"{symbol}:{seq}".encode())]
        )
    assert producer.flush(30) == 0


def signals_consumer(settings: Settings) -> Consumer:
    """A consumer of ``option_bar_signals`` from its start, in a group of its own."""
    consumer = Consumer(
        {**settings.kafka_config(), "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([SIGNALS])
    return consumer


def _signals(
    consumer: Consumer, serde: AvroSerde, symbol: str, want: int, seen: list[dict[str, Any]]
) -> None:
    """Read ``option_bar_signals`` until ``want`` signals of ``symbol`` are in ``seen``."""
    deadline = time.monotonic() + 90
    while len(seen) < want and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            value = msg.value()
            if msg.error() is None and value:
                record = serde.decode(value)
                if record["symbol"] == symbol:
                    seen.append(record)
    assert len(seen) >= want, f"{len(seen)} of {want} signals of {symbol} within 90 s"


def test_a_promoted_version_redeploys_the_scoring_pipeline_and_scores_the_next_bars(
    world: dict[str, Any],
) -> None:
    settings, app, runtime = world["settings"], world["app"], world["runtime"]
    control = ControlPlane.from_settings(settings)
    models = ModelStore(object_store(settings), MODEL)
    _write_days(world["store"], date(2026, 3, 1), 3, learnable=True, seed=1)
    assert _materialize({**world}).success
    first = models.current()
    assert first is not None

    # the sensor's function asks for the scoring pipeline (never deployed); the run deploys it
    requests, cursor = redeploy_requests(world["resource"], {})
    assert SCORING in {r.tags.get("tradesignals/pipeline") for r in requests}
    desired, status = deploy_pipeline(app, SCORING, settings, control, runtime)
    assert status.state == "running", status.detail
    assert desired.env["TRADESIGNALS_MODEL_VERSION"] == first

    symbol = f"T{uuid.uuid4().hex[:10].upper()}"
    bars_serde, signals_serde = _serde(settings, app, BARS), _serde(settings, app, SIGNALS)
    consumer = signals_consumer(settings)
    try:
        _produce_bars(settings, bars_serde, symbol, 0, 30)
        seen: list[dict[str, Any]] = []
        _signals(consumer, signals_serde, symbol, 30, seen)
        assert [s["sequence"] for s in seen] == list(range(30)), "one signal per bar, in order"
        assert {s["model_version"] for s in seen} == {first}

        # a new exported day: a new version is trained and promoted
        _write_days(world["store"], date(2026, 3, 4), 1, learnable=True, seed=50)
        assert _materialize({**world}).success
        second = models.current()
        assert second is not None and second != first

        # the sensor sees the running pipeline at the old version and requests a redeploy
        requests, _ = redeploy_requests(world["resource"], cursor)
        scoring = [r for r in requests if r.tags.get("tradesignals/pipeline") == SCORING]
        assert len(scoring) == 1 and "differs" in scoring[0].tags["tradesignals/reason"], requests
        before = runtime.status(SCORING)
        desired, status = deploy_pipeline(app, SCORING, settings, control, runtime)
        assert status.state == "running", status.detail
        assert desired.env["TRADESIGNALS_MODEL_VERSION"] == second
        assert status.version == desired.version != before.version

        _produce_bars(settings, bars_serde, symbol, 30, 20)
        _signals(consumer, signals_serde, symbol, 50, seen)
        later = [s for s in seen if s["sequence"] >= 30]
        assert [s["sequence"] for s in later] == list(range(30, 50)), [s["sequence"] for s in later]
        assert {s["model_version"] for s in later} == {second}
        # and nothing is asked for once the pipeline runs the promoted version
        requests, _ = redeploy_requests(world["resource"], {})
        assert SCORING not in {r.tags.get("tradesignals/pipeline") for r in requests}
    finally:
        consumer.close()
