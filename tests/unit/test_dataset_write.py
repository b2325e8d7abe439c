"""Writing a day's partition on a plain directory (``file://``): layout, row groups, file
rollover, empty days, stale parts removed, nothing left in staging, day range, store URLs."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradesignals_dagster.datasets.errors import DatasetError, InvalidDatasetInput
from tradesignals_dagster.datasets.export import list_parquet, partition_dir, read_day, write_day
from tradesignals_dagster.datasets.spec import DatasetSpec, dataset_spec
from tradesignals_dagster.datasets.store import ObjectStore, object_store
from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.settings import Settings

SCHEMA = """
namespace: t
name: Bar
type: record
fields:
  - {name: symbol, type: string}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: close, type: bytes, logical_type: decimal, precision: 12, scale: 4}
"""
DAY = date(2026, 1, 5)


def _spec(tmp_path: Path) -> DatasetSpec:
    reg = tmp_path / "registry"
    (reg / "schemas").mkdir(parents=True)
    (reg / "schemas" / "bars.yaml").write_text(SCHEMA)
    (reg / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n"
        "Tables:\n  bars:\n    topic_id: bars\n    order_by: [symbol, timestamp]\n"
        "Datasets:\n  d:\n    table_id: bars\n    start_date: 2026-01-01\n    end_date: 2026-01-31\n"
        "    row_group_rows: 1000\n    max_file_rows: 10000\n"
    )
    return dataset_spec(load_registry(reg).require(), "d")


def _store(tmp_path: Path) -> ObjectStore:
    return object_store(Settings(object_store_url=(tmp_path / "lake").as_uri()))


def _batches(n: int, size: int = 333) -> list[pa.RecordBatch]:
    """As ClickHouse sends them: small blocks, strings as large_string, decimals wider."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    table = pa.table(
        {
            "symbol": pa.array([f"S{i % 5}" for i in range(n)], pa.large_string()),
            "timestamp": pa.array(
                [start + timedelta(seconds=i) for i in range(n)], pa.timestamp("ms", tz="UTC")
            ),
            "close": pa.array([Decimal(i) / 4 for i in range(n)], pa.decimal128(18, 4)),
        }
    )
    return table.to_batches(max_chunksize=size)


def test_rows_are_regrouped_cast_and_rolled_into_files(tmp_path: Path) -> None:
    spec, store = _spec(tmp_path), _store(tmp_path)
    result = write_day(store, spec, DAY, _batches(25_000))
    assert result.rows == 25_000 and result.row_groups == 25
    names = [i.base_name for i in list_parquet(store, partition_dir(store, spec, DAY))]
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    meta = pq.read_metadata(tmp_path / "lake" / "d" / "dt=2026-01-05" / "part-00000.parquet")
    assert (meta.num_rows, meta.num_row_groups, meta.row_group(0).num_rows) == (10_000, 10, 1_000)
    assert read_day(store, spec, DAY).schema.equals(spec.schema)
    assert result.min_event_time == datetime(2026, 1, 5, tzinfo=UTC)
    assert result.max_event_time == datetime(2026, 1, 5, tzinfo=UTC) + timedelta(seconds=24_999)
    assert result.files[0] == (tmp_path / "lake" / "d" / "dt=2026-01-05").as_uri() + "/part-00000.parquet"


def test_a_smaller_re_export_removes_stale_parts_and_staging_is_empty(tmp_path: Path) -> None:
    spec, store = _spec(tmp_path), _store(tmp_path)
    write_day(store, spec, DAY, _batches(25_000))
    stray = tmp_path / "lake" / "d" / "dt=2026-01-05" / "part-00009.parquet"
    pq.write_table(pa.table({"x": [1]}), stray)
    again = write_day(store, spec, DAY, _batches(4_000))
    assert len(again.removed) == 3 and not stray.exists()
    assert read_day(store, spec, DAY).num_rows == 4_000
    assert [p for p in (tmp_path / "lake" / "_staging").rglob("*") if p.is_file()] == []


def test_an_empty_day_is_one_file_with_the_schema(tmp_path: Path) -> None:
    spec, store = _spec(tmp_path), _store(tmp_path)
    result = write_day(store, spec, DAY, [])
    assert (result.rows, len(result.files), result.min_event_time) == (0, 1, None)
    table = pq.read_table(tmp_path / "lake" / "d" / "dt=2026-01-05" / "part-00000.parquet")
    assert table.num_rows == 0 and table.schema.equals(spec.schema)


def test_a_failed_write_leaves_the_published_day_alone(tmp_path: Path) -> None:
    """A null in a non-nullable column fails the cast part-way: the published day stays."""
    spec, store = _spec(tmp_path), _store(tmp_path)
    write_day(store, spec, DAY, _batches(2_000))
    bad = pa.record_batch(
        [
            pa.array(["x"], pa.large_string()),
            pa.array([None], pa.timestamp("ms", tz="UTC")),
            pa.array([None], pa.decimal128(18, 4)),
        ],
        names=["symbol", "timestamp", "close"],
    )
    with pytest.raises(DatasetError, match="do not fit the dataset's schema"):
        write_day(store, spec, DAY, [*_batches(1_500), bad])
    assert read_day(store, spec, DAY).num_rows == 2_000
    assert list((tmp_path / "lake" / "_staging").rglob("*.parquet")) == []


def test_days_outside_the_range_and_bad_urls_are_input_errors(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    for day in (date(2025, 12, 31), date(2026, 2, 1)):
        with pytest.raises(InvalidDatasetInput, match="outside its range"):
            spec.check_day(day)
    spec.check_day(date(2026, 1, 31))
    with pytest.raises(InvalidDatasetInput, match="neither s3://"):
        object_store(Settings(object_store_url="gs://bucket/x"))
    with pytest.raises(InvalidDatasetInput, match="names no bucket"):
        object_store(Settings(object_store_url="s3:///x"))
    local = object_store(Settings(object_store_url=str(tmp_path / "plain"), state_dir=tmp_path))
    assert local.kind == "file" and local.uri("d") == (tmp_path / "plain" / "d").as_uri()
    default = object_store(Settings(state_dir=tmp_path / "state"))
    assert default.url == (tmp_path / "state" / "datasets").resolve().as_uri()


def test_a_crashed_runs_staging_is_removed_once_old_and_a_live_one_is_kept(tmp_path: Path) -> None:
    spec, store = _spec(tmp_path), _store(tmp_path)
    day_staging = tmp_path / "lake" / "_staging" / "d" / "dt=2026-01-05"
    old, live = day_staging / "crashed" / "part-00000.parquet", day_staging / "writing" / "part-00000.parquet"
    for path in (old, live):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    write_day(store, spec, DAY, _batches(100))
    assert not old.exists() and live.exists()
