"""A corpus of broken registries: each exits 2 naming the file, the key and the reason.

Each case starts from a small valid registry, changes one or two files, runs the real CLI entry
point and checks the output. None may print a traceback or an internal error.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from registry_corpus import PIPELINES
from registry_corpus import replace as _replace
from registry_corpus import run_validate as _run
from registry_corpus import write_registry as _write

# id -> (file changes, substrings every one of which must appear in the output)
CASES: dict[str, tuple[dict[str, str | None], list[str]]] = {
    "negative-partitions": (
        _replace("registry/topics.yaml", "num_partitions: 2", "num_partitions: -1"),
        ["registry/topics.yaml:3 topics[0].num_partitions: must be >= 1, got -1"],
    ),
    "partitions-not-a-number": (
        _replace("registry/topics.yaml", "num_partitions: 2", "num_partitions: four"),
        ["registry/topics.yaml:3 topics[0].num_partitions:", "integer", "'four'"],
    ),
    "typo-in-topic-key": (
        _replace("registry/topics.yaml", "num_partitions: 2", "num_partitons: 2"),
        [
            "registry/topics.yaml:3 topics[0].num_partitons: unknown key",
            "did you mean 'num_partitions'",
        ],
    ),
    "typo-in-pipeline-key": (
        _replace("registry/pipelines.yaml", "      input:", "      inptu:"),
        ["registry/pipelines.yaml:9", "Pipelines.bars.inptu: unknown key", "'input'"],
    ),
    "typo-in-input-key": (
        _replace("registry/pipelines.yaml", "consumer_group_id", "consumer_grop_id"),
        ["Pipelines.bars.input.consumer_grop_id: unknown key", "did you mean 'consumer_group_id'"],
    ),
    "typo-in-section": (
        _replace("registry/pipelines.yaml", "  Pipelines:", "  Pipelnes:"),
        ["registry/pipelines.yaml:6 StreamingApplication.Pipelnes: unknown key", "'Pipelines'"],
    ),
    "wrong-case-section": (
        _replace("registry/pipelines.yaml", "  Topics:", "  topics:"),
        ["StreamingApplication.topics: unknown key", "did you mean 'Topics'"],
    ),
    "unknown-input-topic": (
        _replace("registry/pipelines.yaml", "kafka_topic_id: trades", "kafka_topic_id: trade"),
        ["registry/pipelines.yaml:12", "input.kafka_topic_id: unknown topic 'trade'", "'trades'"],
    ),
    "unknown-output-topic": (
        _replace("registry/pipelines.yaml", "kafka_topic_id: bars", "kafka_topic_id: barz"),
        ["registry/pipelines.yaml:15", "output.kafka_topic_id: unknown topic 'barz'"],
    ),
    "kafka-input-without-topic": (
        _replace("registry/pipelines.yaml", "        kafka_topic_id: trades\n", ""),
        ["Pipelines.bars.input: a kafka input needs kafka_topic_id"],
    ),
    "reads-what-it-writes": (
        _replace("registry/pipelines.yaml", "kafka_topic_id: bars", "kafka_topic_id: trades"),
        ["output.kafka_topic_id: the pipeline reads and writes the same topic 'trades'"],
    ),
    "cycle": (
        {
            "registry/pipelines.yaml": PIPELINES
            + textwrap.indent(
                textwrap.dedent("""\
            back:
              input: {type: kafka, kafka_topic_id: bars}
              output: {type: kafka, topic_id: trades}
            """),
                "    ",
            )
        },
        ["pipelines and topics form a cycle", "back -> bars -> back"],
    ),
    "isr-above-replication": (
        _replace("registry/topics.yaml", "min_insync_replicas: 1", "min_insync_replicas: 3"),
        ["registry/topics.yaml:5 topics[0].min_insync_replicas: min_insync_replicas (3) exceeds"],
    ),
    "bad-cleanup-policy": (
        _replace("registry/topics.yaml", "num_partitions: 2", "cleanup_policy: purge"),
        ["topics[0].cleanup_policy: must be one of", "'purge'"],
    ),
    "bad-key-serializer": (
        _replace("registry/topics.yaml", "num_partitions: 2", "key_serializer: uuid"),
        ["topics[0].key_serializer: must be one of", "'uuid'"],
    ),
    "avro-without-schema": (
        _replace("registry/topics.yaml", "    value_schema_id: bars\n", ""),
        ["registry/topics.yaml:7 topics[1]: value_serializer is avro but the topic has no value_schema"],
    ),
    "missing-schema-file": (
        {"registry/schemas/bars.avsc": None},
        ["registry/topics.yaml:11 topics[1].value_schema_id: schema 'bars' is not in the Schemas"],
    ),
    "scale-above-precision": (
        _replace("registry/schemas/trades.yaml", "scale: 4", "scale: 12"),
        [
            "registry/schemas/trades.yaml:10 fields[1].scale: decimal scale must be between 0 and precision (10), got 12"
        ],
    ),
    "decimal-without-precision": (
        _replace("registry/schemas/trades.yaml", "    precision: 10\n", ""),
        ["registry/schemas/trades.yaml:6 fields[1].precision: a decimal needs precision >= 1"],
    ),
    "decimal-on-string": (
        _replace("registry/schemas/trades.yaml", "type: bytes", "type: string"),
        ["fields[1].logical_type: logical type decimal needs type bytes or fixed"],
    ),
    "bad-field-name": (
        _replace("registry/schemas/trades.yaml", "name: symbol", "name: 2symbol"),
        ["registry/schemas/trades.yaml:4 fields[0].name: '2symbol' is not a valid Avro field name"],
    ),
    "duplicate-field-name": (
        _replace("registry/schemas/trades.yaml", "name: price", "name: symbol"),
        ["registry/schemas/trades.yaml:6 fields[1].name: field name 'symbol' is used twice"],
    ),
    "bad-record-name": (
        _replace("registry/schemas/trades.yaml", "name: Trade", "name: Trade-Record"),
        ["registry/schemas/trades.yaml:1 name: 'Trade-Record' is not a valid Avro name"],
    ),
    "unknown-avro-type": (
        _replace("registry/schemas/trades.yaml", "type: string", "type: strng"),
        ["registry/schemas/trades.yaml:5 fields[0].type: unknown Avro type 'strng'"],
    ),
    "bad-default": (
        _replace("registry/schemas/trades.yaml", "type: string", "type: int\n    default: abc"),
        ["fields[0].default: default 'abc' is not a valid int"],
    ),
    "empty-record": (
        {"registry/schemas/trades.yaml": "name: Trade\nfields: []\n"},
        ["registry/schemas/trades.yaml:2 fields: record 'Trade' has no fields"],
    ),
    "invalid-avsc": (
        {"registry/schemas/bars.avsc": '{"type": "record", "name": "Bar", "fields": [{"name": "x"}]}'},
        ["registry/schemas/bars.avsc", "not a valid Avro schema"],
    ),
    "yaml-syntax-error": (
        _replace("registry/topics.yaml", "num_partitions: 2", "num_partitions: [2"),
        ["registry/topics.yaml:", "YAML syntax error"],
    ),
    "tabs": (
        _replace("registry/topics.yaml", "    num_partitions: 2", "\tnum_partitions: 2"),
        ["registry/topics.yaml:3", "tabs"],
    ),
    "empty-root-file": (
        {"registry/pipelines.yaml": ""},
        ["registry/pipelines.yaml: file is empty"],
    ),
    "empty-topics-file": (
        {"registry/topics.yaml": "   \n"},
        ["registry/topics.yaml: file is empty"],
    ),
    "missing-topics-file": (
        {"registry/topics.yaml": None},
        [
            "registry/pipelines.yaml:5 StreamingApplication.Topics: Topics refers to 'topics.yaml', which does not exist"
        ],
    ),
    "missing-root-file": (
        {"registry/pipelines.yaml": None},
        ["registry: no pipelines.yaml in this directory"],
    ),
    "root-is-a-list": (
        {"registry/pipelines.yaml": "- a\n- b\n"},
        ["registry/pipelines.yaml:1", "the root must be a mapping", "got a list"],
    ),
    "duplicate-key": (
        _replace("registry/topics.yaml", "num_partitions: 2", "num_partitions: 2\n    num_partitions: 3"),
        ["registry/topics.yaml:4 topics[0].num_partitions: duplicate key 'num_partitions' (first at line 3)"],
    ),
    "duplicate-topic": (
        _replace("registry/topics.yaml", "topic_id: bars", "topic_id: trades"),
        ["registry/topics.yaml:7 topics[1].topic_id: topic 'trades' is defined twice"],
    ),
    "both-spellings-differ": (
        _replace(
            "registry/pipelines.yaml",
            "consumer_group_id: bars_group",
            "consumer_group_id: a\n        group_id: b",
        ),
        [
            "Pipelines.bars.input.consumer_group_id: both 'group_id' and 'consumer_group_id' are given and differ"
        ],
    ),
    "bad-log-level": (
        _replace("registry/pipelines.yaml", "  log_level: INFO", "  log_level: LOUD"),
        ["registry/pipelines.yaml:4 StreamingApplication.log_level: must be one of", "'LOUD'"],
    ),
    "topic-not-a-mapping": (
        _replace(
            "registry/topics.yaml",
            "  - topic_id: bars\n",
            "  - just-a-string\n  - topic_id: bars\n",
        ),
        ["registry/topics.yaml:7 topics[1]: a topic must be a mapping, got a string"],
    ),
    "pipeline-dir-missing": (
        {"pipelines/bars/config.yaml": None, "pipelines/barz/config.yaml": "{}\n"},
        [
            "registry/pipelines.yaml:7 StreamingApplication.Pipelines.bars: pipeline 'bars' has no directory",
            "did you mean 'barz'",
        ],
    ),
    "pipeline-config-not-mapping": (
        {"pipelines/bars/config.yaml": "- 1\n- 2\n"},
        ["pipelines/bars/config.yaml:1 : config.yaml must be a mapping", "got a list"]
        if False
        else ["pipelines/bars/config.yaml:1: config.yaml must be a mapping"],
    ),
    "websocket-without-url": (
        _replace(
            "registry/pipelines.yaml",
            "type: kafka\n        consumer",
            "type: websocket\n        consumer",
        ),
        ["Pipelines.bars.input: a websocket input needs url"],
    ),
    "lineage-unknown-field": (
        _replace(
            "registry/pipelines.yaml",
            "        kafka_topic_id: bars\n",
            "        kafka_topic_id: bars\n      column_lineage:\n        volume: [size]\n",
        ),
        ["Pipelines.bars.column_lineage.volume: 'size' is not a field of trades"],
    ),
    "wrong-type-for-entitlements": (
        _replace(
            "registry/pipelines.yaml",
            "        kafka_topic_id: bars\n",
            "        kafka_topic_id: bars\n        entitlements: 5\n",
        ),
        ["Pipelines.bars.output.entitlements:", "list", "got 5"],
    ),
}


def test_corpus_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_base_registry_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, {})
    code, output = _run(tmp_path, capsys, monkeypatch)
    assert code == 0, output
    assert "valid - 2 topic(s), 2 schema(s), 1 pipeline(s)" in output


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_registry_exits_2_naming_file_and_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    changes, expected = CASES[case]
    _write(tmp_path, changes)
    code, output = _run(tmp_path, capsys, monkeypatch)
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
