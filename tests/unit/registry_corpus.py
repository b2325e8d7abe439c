"""The small valid registry the malformed corpora start from, and how they run ``validate``.

Shared by test_validate_corpus.py (shapes and references) and test_registry_hostile.py
(hostile input: files, YAML tricks, names, numbers, Avro, custom code).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals_dagster.cli import main

PIPELINES = """\
StreamingApplication:
  id: demo
  environment: test
  log_level: INFO
  Topics: topics.yaml
  Pipelines:
    bars:
      id: Bars
      input:
        type: kafka
        consumer_group_id: bars_group
        kafka_topic_id: trades
      output:
        type: kafka
        kafka_topic_id: bars
"""

TOPICS = """\
topics:
  - topic_id: trades
    num_partitions: 2
    replication_factor: 1
    min_insync_replicas: 1
    value_schema_id: trades
  - topic_id: bars
    num_partitions: 2
    replication_factor: 1
    min_insync_replicas: 1
    value_schema_id: bars
"""

TRADES = """\
name: Trade
namespace: demo
fields:
  - name: symbol
    type: string
  - name: price
    type: bytes
    logical_type: decimal
    precision: 10
    scale: 4
"""

BARS = """\
{"type": "record", "name": "Bar", "namespace": "demo",
 "fields": [{"name": "symbol", "type": "string"}, {"name": "volume", "type": "long"}]}
"""

BASE = {
    "registry/pipelines.yaml": PIPELINES,
    "registry/topics.yaml": TOPICS,
    "registry/schemas/trades.yaml": TRADES,
    "registry/schemas/bars.avsc": BARS,
    "pipelines/bars/config.yaml": "bar_volume: 10\n",
}


def replace(name: str, old: str, new: str) -> dict[str, str | None]:
    content = BASE[name]
    assert old in content, f"fixture drift: {old!r} not in {name}"
    return {name: content.replace(old, new, 1)}


def write_registry(root: Path, changes: dict[str, str | None]) -> None:
    files = {**BASE, **changes}
    for name, content in files.items():
        if content is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def run_validate(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    monkeypatch.chdir(root)
    code = main(["validate", "--registry", "registry", "--pipelines", "pipelines"])
    out = capsys.readouterr()
    return code, out.out + out.err
