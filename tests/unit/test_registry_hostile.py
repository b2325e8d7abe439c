"""Hostile and careless input: each case exits 2 through the real CLI, naming file, line, key, reason.

One case at least per class of hole in issue 9: unbounded YAML (aliases, nesting, recursion),
references and links out of the registry, special files, explicit tags, non-string keys,
control characters, names and numbers Kafka refuses, ``configs:``, Avro the schema registry
refuses, custom code outside its pipeline's directory. The nastiest also run in a separate
process limited to 512 MB of address space and 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_corpus import replace, run_validate, write_registry

from tradesignals_dagster.kafka.avro_validity import avro_problem
from tradesignals_dagster.stack.schema_registry.errors import RegistryApiError
from tradesignals_dagster.stack.schema_registry.schemas import prepare_schema

T, P, BARS = "registry/topics.yaml", "registry/pipelines.yaml", "registry/schemas/bars.avsc"
LAUGHS = "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
).replace("b: &b [*a", 'a: &a ["lol"]\nb: &b [*a', 1)
CUSTOM = "        type: kafka\n        consumer"


def _custom(module: str, cls: str = "Feed") -> dict[str, str | None]:
    return replace(
        P,
        CUSTOM,
        f"        type: custom\n        module_path: {module}\n        class_name: {cls}\n        consumer",
    )


def _bars(field_type: str, extra: str = "") -> dict[str, str | None]:
    return {
        BARS: f'{{"type": "record", "name": "Bar", "fields": [{{"name": "x", "type": {field_type}{extra}}}]}}'
    }


CASES: dict[str, tuple[dict[str, str | None], list[str]]] = {
    "billion-laughs": ({T: LAUGHS}, ["registry/topics.yaml: aliases expand to more than 1,000,000 values"]),
    "recursive-alias": ({T: "topics: &t\n  - *t\n"}, ["registry/topics.yaml:1: recursive alias"]),
    "deep-nesting": (
        {T: "topics: " + "[" * 100 + "]" * 100 + "\n"},
        ["registry/topics.yaml:1: nesting is deeper"],
    ),
    "python-tag": (
        replace(T, "num_partitions: 2", "num_partitions: !!python/object/apply:os.system [id]"),
        ["registry/topics.yaml:3: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"],
    ),
    "tag-on-mapping": (
        {T: "topics: !!python/object:x.Y\n  a: 1\n"},
        ["registry/topics.yaml:1: YAML tag", "not allowed"],
    ),
    "binary-tag": (
        replace(T, "num_partitions: 2", "doc: !!binary aGk="),
        ["registry/topics.yaml:3: YAML tag", "binary"],
    ),
    "yes-key": (
        replace(P, "    bars:", "    yes:"),
        ["registry/pipelines.yaml:7 StreamingApplication.Pipelines: key 'yes' is read by YAML as a boolean"],
    ),
    "null-key": (
        replace(P, "    bars:", "    ~:"),
        ["pipelines.yaml:7 StreamingApplication.Pipelines: key '~'", "null"],
    ),
    "number-key": (
        replace(P, "    bars:", "    123:"),
        ["pipelines.yaml:7 StreamingApplication.Pipelines: key '123'"],
    ),
    "control-characters-in-key": (
        replace(P, "    bars:", '    "bars\\e[2J\\u202e":'),
        ["registry/pipelines.yaml:7 StreamingApplication.Pipelines.bars\\x1b[2J\\u202e: a pipeline id must"],
    ),
    "topics-dotdot": (
        replace(P, "Topics: topics.yaml", "Topics: ../../etc/passwd"),
        ["registry/pipelines.yaml:5 StreamingApplication.Topics: Topics file may not use '..'"],
    ),
    "topics-absolute": (
        replace(P, "Topics: topics.yaml", "Topics: /dev/zero"),
        ["registry/pipelines.yaml:5 StreamingApplication.Topics: Topics file must be a path relative"],
    ),
    "schemas-section-dotdot": (
        replace(P, "  Pipelines:", "  Schemas:\n    bars: ../../secret.avsc\n  Pipelines:"),
        ["registry/pipelines.yaml:7 StreamingApplication.Schemas.bars: schema file may not use '..'"],
    ),
    "value-schema-id-path": (
        replace(T, "value_schema_id: bars", "value_schema_id: ../../etc/passwd"),
        ["registry/topics.yaml:11 topics[1].value_schema_id: a topic name may only use"],
    ),
    "topic-name-too-long": (
        replace(T, "topic_id: bars", "topic_id: " + "b" * 250),
        ["registry/topics.yaml:7 topics[1].topic_id: a topic name has at most 249 characters"],
    ),
    "topic-name-slash": (
        replace(T, "topic_id: bars", "topic_id: a/b"),
        ["topics.yaml:7 topics[1].topic_id: a topic name may only"],
    ),
    "topic-name-dotdot": (
        replace(T, "topic_id: bars", "topic_id: '..'"),
        ["topics.yaml:7 topics[1].topic_id: '.' and '..'"],
    ),
    "pipeline-id-traversal": (
        replace(P, "    bars:", "    ../../x:"),
        [
            "registry/pipelines.yaml:7 StreamingApplication.Pipelines.../../x: a pipeline id must start with a letter"
        ],
    ),
    "dead-letter-topic": (
        replace(P, "      output:", "      dead_letter_topic: 'a b'\n      output:"),
        ["pipelines.yaml:13 StreamingApplication.Pipelines.bars.dead_letter_topic: a topic name may only"],
    ),
    "partitions-huge": (
        replace(T, "num_partitions: 2", "num_partitions: 100000000000000000000"),
        ["registry/topics.yaml:3 topics[0].num_partitions: must be <= 10000"],
    ),
    "retention-huge": (
        replace(T, "num_partitions: 2", "retention_ms: 1000000000000000000000000000000"),
        ["registry/topics.yaml:3 topics[0].retention_ms: must be <= 9223372036854775807"],
    ),
    "replication-huge": (
        replace(T, "replication_factor: 1", "replication_factor: 40000"),
        ["registry/topics.yaml:4 topics[0].replication_factor: must be <= 32767"],
    ),
    "speed-infinite": (
        replace(
            P, CUSTOM, "        type: replay\n        path: x.csv\n        speed: .inf\n        consumer"
        ),
        [
            "pipelines.yaml:12 StreamingApplication.Pipelines.bars.input.speed: input should be a finite number"
        ],
    ),
    "configs-nested": (
        replace(T, "num_partitions: 2", "configs: {segment.ms: {a: 1}}"),
        ["registry/topics.yaml:3 topics[0].configs: 'segment.ms' needs a single value"],
    ),
    "configs-overrides-first-class": (
        replace(T, "num_partitions: 2", "configs: {retention.ms: 5}"),
        ["registry/topics.yaml:3 topics[0].configs: 'retention.ms' has its own key: set retention_ms"],
    ),
    "configs-unknown": (
        replace(T, "num_partitions: 2", "configs: {segment.msx: 5}"),
        [
            "topics.yaml:3 topics[0].configs: 'segment.msx' is not a Kafka topic config (did you mean 'segment.ms'?)"
        ],
    ),
    "avro-duplicate-union-branch": (
        _bars('["null", "string", "string"]'),
        [f"{BARS}:1: not a valid Avro", "more than one 'string'"],
    ),
    "avro-nested-union": (
        _bars('["null", ["string"]]'),
        [f"{BARS}:1: not a valid Avro", "may not directly contain another union"],
    ),
    "avro-negative-fixed": (
        _bars('{"type": "fixed", "name": "F", "size": -1}'),
        [f"{BARS}:1:", "non-negative integer 'size'"],
    ),
    "avro-primitive-name": (
        {BARS: '{"type": "record", "name": "int", "fields": [{"name": "x", "type": "long"}]}'},
        [f"{BARS}:1: not a valid Avro schema: the name 'int' is a primitive type name"],
    ),
    "avro-default-first-branch": (
        _bars('["null", "long"]', ', "default": 5'),
        [
            f"{BARS}:1:",
            "field 'x': default 5 is not a valid null (a union's default matches its first branch)",
        ],
    ),
    "avro-decimal-scale": (
        _bars('{"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 5}'),
        [f"{BARS}:1:", "a decimal's scale must be an integer from 0 to 2, got 5"],
    ),
    "avro-enum-symbol": (
        _bars('{"type": "enum", "name": "E", "symbols": ["a-b"]}'),
        [f"{BARS}:1:", "'a-b' is not a valid Avro name"],
    ),
    "custom-module-absolute": (
        _custom("/tmp/evil.py"),
        [
            "pipelines.yaml:11 StreamingApplication.Pipelines.bars.input.module_path: module_path must be a path relative"
        ],
    ),
    "custom-module-dotdot": (
        _custom("../other/feed.py"),
        ["Pipelines.bars.input.module_path: module_path may not use '..'"],
    ),
    "custom-module-elsewhere": (
        _custom("os"),
        [
            "pipelines.yaml:11 StreamingApplication.Pipelines.bars.input.module_path: module 'os' is not in pipelines/bars/"
        ],
    ),
    "custom-class-missing": (
        {**_custom("feed.py", "Evil"), "pipelines/bars/feed.py": "class Other:\n    pass\n"},
        [
            "pipelines.yaml:12 StreamingApplication.Pipelines.bars.input.class_name: pipelines/bars/feed.py defines no class 'Evil'"
        ],
    ),
    "app-syntax-error": (
        {"pipelines/bars/app.py": "import os\ndef build(:\n"},
        ["pipelines/bars/app.py:2: Python syntax error"],
    ),
    "app-without-build": (
        {"pipelines/bars/app.py": "import os\n"},
        ["pipelines/bars/app.py: app.py must define build(ctx)"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_registry_exits_2_naming_file_and_key(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    changes, expected = CASES[case]
    write_registry(tmp_path, changes)
    code, output = run_validate(tmp_path, capsys, monkeypatch)
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert "\x1b" not in output and "\u202e" not in output, output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


def test_valid_custom_input_in_its_pipeline_directory_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = "class Feed:\n    pass\n"
    write_registry(tmp_path, {**_custom("feeds.live"), "pipelines/bars/feeds/live.py": feed})
    code, output = run_validate(tmp_path, capsys, monkeypatch)
    assert code == 0, output


def test_schema_registry_service_and_validate_share_one_avro_check() -> None:
    nested = '{"type": "record", "name": "R", "fields": [{"name": "x", "type": ["null", ["int"]]}]}'
    assert avro_problem(nested) is not None
    with pytest.raises(RegistryApiError) as caught:
        prepare_schema(nested)
    assert caught.value.error_code == 42201
    assert "may not directly contain another union" in str(caught.value.body())
    good = (
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": ["null", "int"], "default": null}]}'
    )
    assert avro_problem(good) is None and prepare_schema(good).text
