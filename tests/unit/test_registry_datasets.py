"""The registry's ``Datasets`` section: defaults, and every bad reference named by file, line and key."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tradesignals_dagster.registry import load_registry

SCHEMA = """
namespace: t
name: Bar
type: record
fields:
  - {name: symbol, type: string}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: close, type: bytes, logical_type: decimal, precision: 12, scale: 4}
  - {name: volume, type: long}
"""
TABLES = "Tables:\n  bars:\n    topic_id: bars\n    order_by: [symbol, timestamp]\n"


def _load(tmp_path: Path, datasets: str) -> object:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "bars.yaml").write_text(SCHEMA)
    (tmp_path / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n" + TABLES + datasets
    )
    return load_registry(tmp_path)


def _errors(tmp_path: Path, datasets: str) -> list[str]:
    result = _load(tmp_path, datasets)
    return [f"{p.file}:{p.line} {p.path}: {p.message}" for p in result.errors]  # type: ignore[attr-defined]


def test_a_dataset_loads_with_defaults(tmp_path: Path) -> None:
    result = _load(tmp_path, "Datasets:\n  bar_days:\n    table_id: bars\n    start_date: 2026-01-01\n")
    app = result.require()  # type: ignore[attr-defined]
    ds = app.datasets["bar_days"]
    assert (ds.table_id, ds.partition, ds.compression, ds.start_date) == (
        "bars",
        "daily",
        "zstd",
        date(2026, 1, 1),
    )
    assert (
        ds.columns is None
        and ds.sort_by is None
        and ds.row_group_rows == 1_000_000
        and ds.delay_minutes == 60
    )


def test_unknown_table_is_named_with_line_and_key(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "Datasets:\n  d1:\n    table_id: bar\n    start_date: 2026-01-01\n")
    assert any("pipelines.yaml:11 Datasets.d1.table_id: unknown table 'bar'" in e for e in errors), errors
    assert any("did you mean 'bars'" in e for e in errors), errors


def test_columns_and_sort_by_must_be_columns_of_the_table(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "Datasets:\n  d1:\n    table_id: bars\n    start_date: 2026-01-01\n"
        "    columns: [symbol, timestamp, price]\n    sort_by: [symbol, volume]\n",
    )
    assert any(
        ":13 Datasets.d1.columns[2]: column 'price' is not a column of table 'bars'" in e for e in errors
    ), errors
    assert any(":14 Datasets.d1.sort_by[1]: sort_by column 'volume'" in e for e in errors), errors


def test_bad_values_are_refused(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "Datasets:\n  bad-id:\n    table_id: bars\n    start_date: 2026-01-01\n"
        "  d2:\n    table_id: bars\n    start_date: 2026-02-01\n    end_date: 2026-01-01\n"
        "    compression: brotli\n    partiton: daily\n",
    )
    assert any("Datasets.bad-id" in e and "dataset id" in e for e in errors), errors
    assert any("Datasets.d2.compression" in e for e in errors), errors
    assert any("Datasets.d2.partiton" in e and "unknown key" in e for e in errors), errors


def test_end_before_start_is_refused(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "Datasets:\n  d2:\n    table_id: bars\n    start_date: 2026-02-01\n    end_date: 2026-01-01\n",
    )
    assert any("Datasets.d2" in e and "before start_date" in e for e in errors), errors
