"""Daily Parquet exports against the real local S3 server (s3proxy) and ClickHouse endpoint.

A registry with one table and one dataset is loaded; the table is created with the warehouse's
own DDL in a database unique to each test and filled with bars; days are exported and read
back with pyarrow and with ClickHouse's ``s3()`` table function (Hive partitioning).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyarrow import fs as pafs

from tradesignals_dagster.cli import main
from tradesignals_dagster.datasets.errors import (
    BucketMissing,
    CredentialsRefused,
    InvalidDatasetInput,
    ObjectStoreUnreachable,
    ReadOnlyStore,
)
from tradesignals_dagster.datasets.export import (
    STAGING,
    export_day,
    list_parquet,
    parquet_summary,
    partition_dir,
    read_day,
    table_day_count,
)
from tradesignals_dagster.datasets.spec import DatasetSpec, dataset_spec
from tradesignals_dagster.datasets.store import ObjectStore, S3Credentials, object_store
from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.process import find_free_port
from tradesignals_dagster.stack.s3 import BUCKET, S3ProxyService
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.ddl import create_database_sql, create_table_sql

SCHEMA = """
namespace: t
name: Bar
type: record
fields:
  - {name: symbol, type: string}
  - {name: sequence, type: long}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
  - {name: close, type: bytes, logical_type: decimal, precision: 12, scale: 4}
  - {name: volume, type: long}
  - {name: vwap, type: double}
"""
DAY = date(2026, 1, 5)


@dataclass
class Env:
    """One test's table, dataset spec, ClickHouse client and S3 store."""

    client: Any
    spec: DatasetSpec
    store: ObjectStore
    server: S3ProxyService
    prefix: str


def _registry(tmp_path: Path, database: str) -> Any:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "bars.yaml").write_text(SCHEMA)
    (tmp_path / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n"
        f"Tables:\n  bars:\n    topic_id: bars\n    database: {database}\n    order_by: [symbol, timestamp]\n"
        "Datasets:\n  bar_days:\n    table_id: bars\n    start_date: 2026-01-01\n    end_date: 2026-12-31\n"
        "    row_group_rows: 2000\n    max_file_rows: 10000\n    sort_by: [symbol, timestamp]\n"
    )
    return load_registry(tmp_path).require()


def _store(server: S3ProxyService, prefix: str, creds: S3Credentials | None = None) -> ObjectStore:
    settings = Settings(object_store_url=f"s3://{BUCKET}/{prefix}", object_store_endpoint=server.endpoint)
    return object_store(settings, credentials=creds or S3Credentials(**server.credentials()))


def bars(day: date, n: int, start_seq: int = 0) -> pa.Table:
    """``n`` bars spread over ``day`` (first at 00:00:00.000, last at 23:59:59.999)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    last = max(n - 1, 1)
    times = [start + timedelta(milliseconds=i * 86_399_999 // last) for i in range(n)]
    return pa.table(
        {
            "symbol": [f"SYM{i % 7}" for i in range(n)],
            "sequence": list(range(start_seq, start_seq + n)),
            "timestamp": pa.array(times, pa.timestamp("ms", tz="UTC")),
            "close": pa.array([Decimal(i % 1000) / 8 for i in range(n)], pa.decimal128(12, 4)),
            "volume": list(range(n)),
            "vwap": [i * 0.5 for i in range(n)],
        }
    )


@pytest.fixture
def env(tmp_path: Path, clickhouse_endpoint: Any, s3_server: S3ProxyService) -> Iterator[Env]:
    database = f"t_{uuid.uuid4().hex[:10]}"
    app = _registry(tmp_path, database)
    client = clickhouse_client(clickhouse_endpoint.settings)
    client.command(create_database_sql(database))
    client.command(create_table_sql(app.tables["bars"], app.schemas["bars"]))
    prefix = f"it-{uuid.uuid4().hex[:10]}"
    try:
        yield Env(client, dataset_spec(app, "bar_days"), _store(s3_server, prefix), s3_server, prefix)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")


def _insert(env: Env, table: pa.Table) -> None:
    env.client.insert_arrow(env.spec.table, table)


def _table_rows(env: Env, day: date) -> list[tuple[Any, ...]]:
    start, end = DatasetSpec.bounds(day)
    rows = env.client.query(
        f"SELECT symbol, sequence, timestamp, close, volume, vwap FROM {env.spec.table} "
        f"WHERE timestamp >= toDateTime64('{start:%Y-%m-%d %H:%M:%S}', 3, 'UTC') "
        f"AND timestamp < toDateTime64('{end:%Y-%m-%d %H:%M:%S}', 3, 'UTC') ORDER BY symbol, timestamp, sequence"
    ).result_rows
    return [tuple(r) for r in rows]


def _norm(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with timestamps as UTC epoch milliseconds, whatever tz each reader attaches."""
    out = []
    for row in rows:
        ts = row[2]
        ms = int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1000)
        out.append((row[0], row[1], ms, Decimal(row[3]), row[4], row[5]))
    return out


def test_a_day_reads_back_row_for_row_with_pyarrow_and_clickhouse_s3(env: Env) -> None:
    _insert(env, pa.concat_tables([bars(DAY, 4_500), bars(DAY + timedelta(days=1), 300, 10_000)]))
    result = export_day(env.client, env.store, env.spec, DAY)

    assert result.rows == 4_500 and len(result.files) == 1 and result.row_groups == 3
    assert result.files == [f"s3://{BUCKET}/{env.prefix}/bar_days/dt=2026-01-05/part-00000.parquet"]
    assert result.min_event_time == datetime(2026, 1, 5, tzinfo=UTC)
    assert result.max_event_time == datetime(2026, 1, 5, 23, 59, 59, 999_000, tzinfo=UTC)
    assert result.bytes > 0
    expected = _norm(_table_rows(env, DAY))
    assert len(expected) == 4_500

    parquet = read_day(env.store, env.spec, DAY)
    assert parquet.schema.equals(env.spec.schema)
    assert _norm([tuple(r.values()) for r in parquet.to_pylist()]) == expected

    creds = env.server.credentials()
    url = f"{env.server.endpoint}/{BUCKET}/{env.prefix}/bar_days/*/*.parquet"
    via_s3 = env.client.query(
        f"SELECT symbol, sequence, timestamp, close, volume, vwap, dt FROM s3('{url}', "
        f"'{creds['access_key']}', '{creds['secret_key']}', 'Parquet') "
        "ORDER BY symbol, timestamp, sequence SETTINGS use_hive_partitioning = 1"
    ).result_rows
    assert {str(r[6]) for r in via_s3} == {"2026-01-05"}
    assert _norm([tuple(r[:6]) for r in via_s3]) == expected


def test_re_export_gives_the_same_files_and_rows_and_leaves_nothing_behind(env: Env) -> None:
    _insert(env, bars(DAY, 25_000))
    first = export_day(env.client, env.store, env.spec, DAY)
    assert first.rows == 25_000 and len(first.files) == 3  # max_file_rows 10,000
    before = read_day(env.store, env.spec, DAY)

    again = export_day(env.client, env.store, env.spec, DAY)
    assert again.files == first.files and again.rows == first.rows
    assert read_day(env.store, env.spec, DAY).equals(before)

    one_file = dataclasses.replace(
        env.spec, dataset=env.spec.dataset.model_copy(update={"max_file_rows": 1_000_000})
    )
    shrunk = export_day(env.client, env.store, one_file, DAY)
    names = [i.base_name for i in list_parquet(env.store, partition_dir(env.store, env.spec, DAY))]
    assert names == ["part-00000.parquet"] and len(shrunk.removed) == 2
    assert read_day(env.store, env.spec, DAY).num_rows == 25_000
    selector = pafs.FileSelector(env.store.path(STAGING), recursive=True, allow_not_found=True)
    staging = env.store.filesystem.get_file_info(selector)
    assert [i.path for i in staging if i.path.endswith(".parquet")] == []


def test_an_empty_day_is_one_valid_file_with_no_rows(env: Env) -> None:
    result = export_day(env.client, env.store, env.spec, date(2026, 2, 1))
    assert (result.rows, len(result.files), result.min_event_time) == (0, 1, None)
    summary = parquet_summary(env.store, env.spec, date(2026, 2, 1))
    assert summary["rows"] == 0 and summary["schemas"][0].equals(env.spec.schema)


def test_rows_arriving_after_the_export_are_seen_by_the_count(env: Env) -> None:
    _insert(env, bars(DAY, 1_000))
    exported = export_day(env.client, env.store, env.spec, DAY)
    assert table_day_count(env.client, env.spec, DAY) == exported.rows == 1_000
    _insert(env, bars(DAY, 10, start_seq=50_000))
    assert (
        table_day_count(env.client, env.spec, DAY)
        == 1_010
        != parquet_summary(env.store, env.spec, DAY)["rows"]
    )


def test_a_day_outside_the_range_writes_nothing(env: Env) -> None:
    for day in (date(2025, 12, 31), date(2027, 1, 1)):
        with pytest.raises(InvalidDatasetInput, match="outside its range"):
            export_day(env.client, env.store, env.spec, day)
    assert list_parquet(env.store, env.store.path("bar_days", "dt=2025-12-31")) == []


def test_store_errors_are_clear_and_write_nothing(env: Env) -> None:
    _insert(env, bars(DAY, 100))
    refused = _store(env.server, env.prefix, S3Credentials("nobody", "wrong-secret"))
    with pytest.raises(CredentialsRefused, match="refused the credentials"):
        export_day(env.client, refused, env.spec, DAY)
    port = find_free_port()
    down = object_store(
        Settings(object_store_url="s3://tradesignals/x", object_store_endpoint=f"http://127.0.0.1:{port}"),
        credentials=S3Credentials("a", "b"),
    )
    with pytest.raises(ObjectStoreUnreachable, match="did not answer"):
        export_day(env.client, down, env.spec, DAY)
    missing = object_store(
        Settings(
            object_store_url=f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x",
            object_store_endpoint=env.server.endpoint,
        ),
        credentials=S3Credentials(**env.server.credentials()),
    )
    with pytest.raises(BucketMissing, match="does not exist"):
        export_day(env.client, missing, env.spec, DAY)
    assert list_parquet(env.store, partition_dir(env.store, env.spec, DAY)) == []


def test_a_read_only_store_is_refused_before_anything_is_written(env: Env, tmp_path: Path) -> None:
    _insert(env, bars(DAY, 100))
    readonly = S3ProxyService(tmp_path / "ro", read_only=True)
    readonly.start(timeout=120.0)
    try:
        store = _store(readonly, "ro")
        with pytest.raises(ReadOnlyStore, match="refused a write"):
            export_day(env.client, store, env.spec, DAY)
        assert list_parquet(store, partition_dir(store, env.spec, DAY)) == []
    finally:
        readonly.stop()


def test_cli_exports_a_day_and_maps_bad_input_to_exit_codes(
    env: Env,
    tmp_path: Path,
    clickhouse_endpoint: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _insert(env, bars(DAY, 500))
    creds = env.server.credentials()
    for key, value in {
        "TRADESIGNALS_CLICKHOUSE_URL": clickhouse_endpoint.url,
        "TRADESIGNALS_CLICKHOUSE_PASSWORD": clickhouse_endpoint.password,
        "TRADESIGNALS_OBJECT_STORE_URL": f"s3://{BUCKET}/{env.prefix}",
        "TRADESIGNALS_OBJECT_STORE_ENDPOINT": str(env.server.endpoint),
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
    }.items():
        monkeypatch.setenv(key, value)
    base = ["datasets", "export", "bar_days", "--registry", str(tmp_path), "--state-dir", str(tmp_path / "s")]
    assert main([*base, "--day", "2026-01-05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 500 and out["files"] == 1
    assert main([*base, "--day", "2025-06-01"]) == 2
    assert "outside its range" in capsys.readouterr().err
    assert main(["datasets", "export", "nope", "--registry", str(tmp_path), "--day", "2026-01-05"]) == 2
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    assert main([*base, "--day", "2026-01-05"]) == 1
    err = capsys.readouterr().err
    assert "refused the credentials" in err and "wrong" not in err and "Traceback" not in err
