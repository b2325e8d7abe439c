"""The registry's ``Models`` section: defaults, and each bad reference named by file, line and key."""

from __future__ import annotations

from pathlib import Path

from tradesignals_dagster.registry import load_registry

SCHEMA = """
namespace: t
name: Bar
type: record
fields:
  - {name: symbol, type: string}
  - {name: sequence, type: long}
  - {name: start_timestamp, type: long, logical_type: timestamp-millis}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: close, type: bytes, logical_type: decimal, precision: 12, scale: 4}
  - {name: volume, type: long}
"""
HEAD = (
    "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n  sig: {value_schema_id: bars}\n"
    "Tables:\n  bars:\n    topic_id: bars\n    order_by: [symbol, timestamp]\n"
    "Datasets:\n  bar_days:\n    table_id: bars\n    start_date: 2026-01-01\n"
)


def _errors(tmp_path: Path, models: str) -> tuple[object, list[str]]:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "bars.yaml").write_text(SCHEMA)
    (tmp_path / "pipelines.yaml").write_text(HEAD + models)
    result = load_registry(tmp_path)
    return result, [f"{p.file}:{p.line} {p.path}: {p.message}" for p in result.errors]


def test_a_model_loads_with_defaults(tmp_path: Path) -> None:
    result, errors = _errors(
        tmp_path, "Models:\n  m1:\n    dataset_id: bar_days\n    features: [returns_1, volume_rate]\n"
    )
    assert errors == []
    model = result.require().models["m1"]  # type: ignore[attr-defined]
    assert (model.trainer, model.target, model.training_window_days, model.signals_topic_id) == (
        "sklearn",
        "next_bar_direction",
        20,
        None,
    )


def test_unknown_dataset_is_named_with_line_and_key(tmp_path: Path) -> None:
    _, errors = _errors(tmp_path, "Models:\n  m1:\n    dataset_id: bar_day\n    features: [returns_1]\n")
    assert any("pipelines.yaml:16 Models.m1.dataset_id: unknown dataset 'bar_day'" in e for e in errors), (
        errors
    )


def test_a_feature_the_dataset_lacks_is_named(tmp_path: Path) -> None:
    _, errors = _errors(
        tmp_path, "Models:\n  m1:\n    dataset_id: bar_days\n    features: [returns_1, vwap_gap, nope]\n"
    )
    assert any(
        "Models.m1.features[1]: feature 'vwap_gap' needs column(s) vwap that dataset 'bar_days' lacks" in e
        for e in errors
    ), errors
    assert any("Models.m1.features[2]: unknown feature 'nope'" in e for e in errors), errors


def test_unknown_trainer_and_topic_are_named(tmp_path: Path) -> None:
    _, errors = _errors(
        tmp_path,
        "Models:\n  m1:\n    dataset_id: bar_days\n    features: [returns_1]\n"
        "    trainer: torch\n    signals_topic_id: sigs\n",
    )
    assert any("Models.m1.trainer: unknown trainer 'torch'" in e for e in errors), errors
    assert any("Models.m1.signals_topic_id: unknown topic 'sigs'" in e for e in errors), errors


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    _, errors = _errors(
        tmp_path, "Models:\n  m1:\n    dataset_id: bar_days\n    features: [returns_1]\n    epochs: 3\n"
    )
    assert any("Models.m1.epochs" in e for e in errors), errors
