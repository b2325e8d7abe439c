"""The Athena DDL of a dataset (types from Avro, partition projection on dt) and its CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tradesignals_dagster.cli import main
from tradesignals_dagster.datasets.athena import athena_ddl
from tradesignals_dagster.datasets.errors import InvalidDatasetInput
from tradesignals_dagster.datasets.spec import dataset_spec
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
  - {name: trade_count, type: int}
  - {name: note, type: ["null", string], default: null}
"""


def _registry(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "bars.yaml").write_text(SCHEMA)
    (tmp_path / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n"
        "Tables:\n  bars:\n    topic_id: bars\n    order_by: [symbol, timestamp]\n"
        "Datasets:\n  bar_days:\n    table_id: bars\n    start_date: 2026-01-01\n"
        "    columns: [symbol, timestamp, close, volume, trade_count, note, _offset]\n"
    )
    return tmp_path


def test_types_come_from_avro_and_days_are_projected(tmp_path: Path) -> None:
    spec = dataset_spec(load_registry(_registry(tmp_path)).require(), "bar_days")
    assert spec.schema.field("close").type == pa.decimal128(12, 4)
    assert spec.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert spec.schema.field("note").nullable and not spec.schema.field("symbol").nullable
    ddl = athena_ddl(spec, "s3://lake/exports/bar_days")
    for part in (
        "CREATE EXTERNAL TABLE IF NOT EXISTS `tradesignals`.`bar_days`",
        "`close` decimal(12,4)",
        "`timestamp` timestamp",
        "`volume` bigint",
        "`trade_count` int",
        "`note` string",
        "`_offset` bigint",
        "PARTITIONED BY (`dt` string)",
        "STORED AS PARQUET",
        "LOCATION 's3://lake/exports/bar_days/'",
        "'projection.dt.range' = '2026-01-01,NOW'",
        "'projection.dt.format' = 'yyyy-MM-dd'",
        "'storage.location.template' = 's3://lake/exports/bar_days/dt=${dt}/'",
        "'parquet.compression' = 'ZSTD'",
    ):
        assert part in ddl, part


def test_cli_prints_the_ddl_for_the_configured_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADESIGNALS_OBJECT_STORE_URL", "s3://lake/exports")
    code = main(
        ["athena-ddl", "bar_days", "--registry", str(_registry(tmp_path)), "--state-dir", str(tmp_path / "s")]
    )
    assert code == 0
    assert "LOCATION 's3://lake/exports/bar_days/'" in capsys.readouterr().out


def test_unknown_dataset_is_exit_2_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "athena-ddl",
            "bars_daily",
            "--registry",
            str(_registry(tmp_path)),
            "--state-dir",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    assert "Unknown dataset 'bars_daily' (datasets: bar_days)" in capsys.readouterr().err
    with pytest.raises(InvalidDatasetInput):
        dataset_spec(load_registry(tmp_path).require(), "nope")
