"""The loader accepts every layout and spelling the seed uses, and normalises them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradesignals_dagster.registry import RegistryError, StreamingTopic, load_registry
from tradesignals_dagster.registry.loader import load_application

ROOT = Path(__file__).parent.parent.parent


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_topic_defaults_are_the_seeds() -> None:
    topic = StreamingTopic(id="t")
    assert (topic.num_partitions, topic.replication_factor, topic.min_insync_replicas) == (4, 3, 2)
    assert (topic.retention_ms, topic.retention_bytes) == (2_592_000_000, -1)
    assert (topic.cleanup_policy, topic.key_serializer, topic.value_serializer) == (
        "delete",
        "string",
        "avro",
    )
    assert topic.value_schema_id is None and topic.reset_topic_on_start is False


def test_flagship_registry_loads_with_its_pipelines() -> None:
    app = load_application(ROOT / "registry", ROOT / "pipelines")
    assert set(app.topics) == {
        "option_trades",
        "option_trades_aggs",
        "option_ohlcv_1s",
        "option_bar_signals",
    }
    assert set(app.pipelines) == {
        "option_trades_ingest",
        "option_trade_volume_bars",
        "option_trade_time_bars",
        "volume_bar_direction_scoring",
    }
    bars = app.pipelines["option_trade_volume_bars"]
    assert bars.config["bar_volume"] > 0
    assert bars.consumer_group() == "option_volume_aggs_consumer"
    trade_fields = {f["name"] for f in app.schemas["option_trades"]["fields"]}
    assert {"symbol", "timestamp", "price", "size"} <= trade_fields
    bar_fields = {f["name"] for f in app.schemas["option_trades_aggs"]["fields"]}
    assert {
        "symbol",
        "start_timestamp",
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trade_count",
        "oi",
        "price",
    } <= bar_fields


def test_sections_at_the_root_inline_topics_and_schemas_section(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pipelines.yaml": """
StreamingApplication:
  id: app
Schemas:
  quote:
    name: Quote
    fields: [{name: bid, type: double}]
Topics:
  quotes:
    num_partitions: 1
    value_schema_id: quote
  ticks:
    value_serializer: json
Pipelines:
  p1:
    input: {type: kafka, topic_id: quotes, group_id: g}
    output: {topic_id: ticks}
""",
        },
    )
    app = load_application(tmp_path)
    assert app.topics["quotes"].num_partitions == 1
    assert app.schemas["quotes"]["fields"] == [{"name": "bid", "type": "double"}]
    assert app.subjects["quotes"] == "quotes-value"
    assert "ticks" not in app.schemas
    assert app.pipelines["p1"].input.kafka_topic_id == "quotes"
    assert app.pipelines["p1"].output.type == "kafka"


def test_avsc_file_and_list_of_pairs_metadata(tmp_path: Path) -> None:
    avsc = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"}]}
    _write(
        tmp_path,
        {
            "pipelines.yaml": """
StreamingApplication:
  id: app
  Topics:
    - id: t
      value_schema_id: t
      compatibility: full_transitive
  Pipelines:
    feed:
      input:
        type: synthetic
        additional_metadata: [[rate, "10"], [seed, "1"]]
      output: {kafka_topic_id: t}
""",
            "schemas/t.avsc": json.dumps(avsc),
        },
    )
    app = load_application(tmp_path)
    assert app.schemas["t"] == avsc
    assert app.topic_compatibility("t") == "FULL_TRANSITIVE"
    assert app.pipelines["feed"].input.additional_metadata == {"rate": "10", "seed": "1"}


def test_schema_translation_moves_logical_types_onto_the_type(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pipelines.yaml": """
StreamingApplication:
  id: app
  Topics:
    t:
      value_schema:
        name: T
        fields:
          - {name: ts, type: long, logical_type: timestamp-millis}
          - {name: px, type: bytes, logical_type: decimal, precision: 9, scale: 3, doc: price}
          - {name: sym, type: string, min_length: 1, max_length: 8}
          - {name: opt, type: ["null", string], default: null}
""",
        },
    )
    fields = load_application(tmp_path).schemas["t"]["fields"]
    assert fields[0]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields[1] == {
        "name": "px",
        "doc": "price",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3},
    }
    assert (fields[2]["min_length"], fields[2]["max_length"]) == (1, 8)
    assert fields[3]["default"] is None


def test_require_raises_with_every_error_listed(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pipelines.yaml": "StreamingApplication:\n  id: a\n  Topics:\n    t: {num_partitions: 0, replication_factor: 0}\n"
        },
    )
    with pytest.raises(RegistryError) as info:
        load_registry(tmp_path).require()
    assert info.value.exit_code == 2
    paths = {p.path for p in info.value.problems}
    assert "StreamingApplication.Topics.t.num_partitions" in paths
    assert "StreamingApplication.Topics.t.replication_factor" in paths


def test_validate_cli_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tradesignals_dagster.cli import main

    code = main(
        [
            "validate",
            "--registry",
            str(ROOT / "registry"),
            "--pipelines",
            str(ROOT / "pipelines"),
            "--json",
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["valid"] is True and payload["problems"] == []


def test_docs_registry_reference_is_current() -> None:
    from tradesignals_dagster.registry.docs import render

    assert (ROOT / "docs" / "registry.md").read_text() == render(), (
        "docs/registry.md is stale: python -m tradesignals_dagster.registry.docs > docs/registry.md"
    )
