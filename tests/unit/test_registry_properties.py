"""Property-based tests: whatever YAML or registry is thrown at the loader, it answers with
problems (or an application), never an exception, and quickly.

Hypothesis generates three kinds of input: arbitrary text, YAML built from random data with
hostile constructs spliced in (anchors and aliases, tags, tabs, odd keys, control characters),
and registries shaped like real ones whose keys and values are drawn from both valid and
invalid vocabularies. Every example runs the real loader on real files; the deadline is 2 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.registry.identifiers import safe_id_problem, topic_name_problem

SETTINGS = settings(
    max_examples=120,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["trades", "bars", "avro", "kafka", "custom", "../x", "/etc/passwd", "a" * 300, ".."]),
)
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "topic_id",
            "id",
            "num_partitions",
            "replication_factor",
            "retention_ms",
            "configs",
            "value_schema_id",
            "value_schema",
            "fields",
            "name",
            "type",
            "default",
            "input",
            "output",
            "module_path",
            "class_name",
            "kafka_topic_id",
            "topic_id",
        ]
    ),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=25,
)
SPLICES = st.sampled_from(
    [
        "&a ",
        "*a ",
        "!!python/object:os.system ",
        "!!binary ",
        "\t",
        "yes: 1\n",
        "~: 1\n",
        "123: x\n",
        "\x1b[31m",
        "\u202e",
        "<<: *a\n",
        "[[[[[[[[",
        "{",
        "'",
        "- ",
        ": ",
        "\n",
        "---\n",
        "%YAML 1.1\n",
    ]
)


def _load_text(text: str, name: str = "pipelines.yaml") -> None:
    """Write ``text`` as the registry's ``name`` and load it; fail on an exception or a slow load."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pipelines").mkdir()
        (root / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        if name != "pipelines.yaml":
            (root / "pipelines.yaml").write_text("StreamingApplication: {id: demo, Topics: topics.yaml}\n")
        started = time.perf_counter()
        result = load_registry(root, root / "pipelines")
        assert time.perf_counter() - started < 2
        _assert_consistent(result)


def _assert_consistent(result: Any) -> None:
    """Problems are located and rendered; an application without errors holds only valid names."""
    for problem in result.problems:
        assert problem.file and problem.render()
        assert "\x1b" not in problem.render()
    if result.app is not None and not result.errors:
        for tid in result.app.topics:
            assert topic_name_problem(tid) is None
        for key in result.app.pipelines:
            assert safe_id_problem(key) is None


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_gives_problems_not_exceptions(text: str) -> None:
    _load_text(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))


@SETTINGS
@given(DATA, st.lists(st.tuples(st.integers(min_value=0), SPLICES), max_size=4))
def test_yaml_with_hostile_constructs_gives_problems(data: Any, splices: list[tuple[int, str]]) -> None:
    text = yaml.safe_dump({"StreamingApplication": {"id": "demo", "Topics": data}}, allow_unicode=True)
    for at, piece in splices:
        cut = at % (len(text) + 1)
        text = text[:cut] + piece + text[cut:]
    _load_text(text)
    _load_text(text, "topics.yaml")


def _topic(fields: dict[str, Any]) -> dict[str, Any]:
    return {"topic_id": "trades", "value_serializer": "json", **fields}


REGISTRIES = st.fixed_dictionaries(
    {
        "topics": st.lists(st.dictionaries(KEYS, DATA, max_size=5).map(_topic), max_size=4),
        "pipelines": st.dictionaries(
            st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=8)),
            st.fixed_dictionaries(
                {
                    "input": st.dictionaries(KEYS, DATA, max_size=4),
                    "output": st.dictionaries(KEYS, DATA, max_size=3),
                }
            ),
            max_size=3,
        ),
    }
)


@SETTINGS
@given(REGISTRIES)
def test_generated_registries_load_or_explain(registry: dict[str, Any]) -> None:
    text = yaml.safe_dump(
        {
            "StreamingApplication": {
                "id": "demo",
                "Topics": registry["topics"],
                "Pipelines": registry["pipelines"],
            }
        },
        allow_unicode=True,
    )
    _load_text(text)
