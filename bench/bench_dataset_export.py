"""Rows/s of a dataset export: one day of 5 M volume bars, ClickHouse -> Parquet on S3.

Everything runs as the product runs it: the ClickHouse endpoint and s3proxy as detached local
services on free ports (fresh temporary state), the table created by the warehouse's DDL from
the flagship's ``option_trades_aggs`` schema and filled by ClickHouse itself (``numbers()``),
and :func:`~tradesignals_dagster.datasets.export.export_day` timed end to end: the Arrow stream
over HTTP, the cast to the registry's schema, zstd Parquet, the staged upload and the move onto
the final key. The file and row-group sizes produced are reported beside the rate.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import Result
from tradesignals_dagster.datasets.export import export_day, parquet_summary
from tradesignals_dagster.datasets.spec import dataset_spec
from tradesignals_dagster.datasets.store import S3Credentials, object_store
from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.clickhouse import ClickHouseEndpointService
from tradesignals_dagster.stack.s3 import BUCKET, S3ProxyService
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.ddl import create_database_sql, create_table_sql

ROWS = 5_000_000
GOAL = 1_000_000.0
DAY = date(2026, 1, 5)
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "registry" / "schemas" / "option_trades_aggs.yaml"
FILL = """
INSERT INTO bench.bars (symbol, sequence, start_timestamp, timestamp, open, high, low, close,
                        volume, vwap, trade_count, oi)
SELECT concat('SYM', toString(number % 400)), intDiv(number, 400),
       addMilliseconds(toDateTime64('2026-01-05 00:00:00', 3, 'UTC'), intDiv(number * 86399999, {rows})),
       addMilliseconds(toDateTime64('2026-01-05 00:00:00', 3, 'UTC'), intDiv(number * 86399999, {rows})),
       toDecimal64((100 + number % 500) / 4, 4), toDecimal64((101 + number % 500) / 4, 4),
       toDecimal64((99 + number % 500) / 4, 4), toDecimal64((100 + number % 503) / 4, 4),
       100 + number % 50, (100 + number % 500) / 4 + 0.001, toInt32(1 + number % 40), toInt32(number % 10000)
FROM numbers({rows})
"""


def _registry(tmp: Path) -> Path:
    root = tmp / "registry"
    (root / "schemas").mkdir(parents=True)
    shutil.copyfile(SCHEMA_FILE, root / "schemas" / "bars.yaml")
    (root / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: bench\nTopics:\n  bars: {value_schema_id: bars}\n"
        "Tables:\n  bars:\n    topic_id: bars\n    database: bench\n    order_by: [symbol, timestamp]\n"
        "Datasets:\n  bars_daily:\n    table_id: bars\n    start_date: 2026-01-01\n"
        "    sort_by: [symbol, timestamp]\n"
    )
    return root


def run() -> list[Result]:
    """Fill a day of ``ROWS`` bars, export it once to the local S3 server, report rows/s."""
    with tempfile.TemporaryDirectory(prefix="bench-ds-") as tmp_name:
        tmp = Path(tmp_name)
        app = load_registry(_registry(tmp)).require()
        clickhouse = ClickHouseEndpointService(tmp)
        s3 = S3ProxyService(tmp)
        try:
            url = clickhouse.start(timeout=60.0)["url"]
            s3.start(timeout=120.0)
            client = clickhouse_client(Settings(state_dir=tmp, clickhouse_url=url))
            client.command(create_database_sql("bench"))
            client.command(create_table_sql(app.tables["bars"], app.schemas["bars"]))
            client.command(FILL.format(rows=ROWS))
            client.command("OPTIMIZE TABLE bench.bars FINAL")
            store = object_store(
                Settings(object_store_url=f"s3://{BUCKET}/bench", object_store_endpoint=s3.endpoint),
                credentials=S3Credentials(**s3.credentials()),
            )
            spec = dataset_spec(app, "bars_daily")
            started = time.perf_counter()
            result = export_day(client, store, spec, DAY)
            elapsed = time.perf_counter() - started
            summary = parquet_summary(store, spec, DAY)
        finally:
            s3.stop()
            clickhouse.stop()
    if result.rows != ROWS or summary["rows"] != ROWS:
        raise SystemExit(f"exported {result.rows} rows, the files hold {summary['rows']}, not {ROWS}")
    rate = ROWS / elapsed
    group_mb = result.bytes / max(result.row_groups, 1) / 1e6
    return [
        Result(
            "dataset export: one day of 5 M bars, ClickHouse -> zstd Parquet on S3 (s3proxy)",
            f">= {GOAL:,.0f} rows/s",
            rate,
            "rows/s",
            rate >= GOAL,
            f"{ROWS:,} rows in {elapsed:.2f} s; {len(result.files)} file of {result.bytes / 1e6:.1f} MB, "
            f"{result.row_groups} row groups of {spec.dataset.row_group_rows:,} rows "
            f"(~{group_mb:.1f} MB each); "
            f"{len(spec.columns)} columns; load avg {os.getloadavg()[0]:.1f}",
        )
    ]
