"""Rows/s of the local ClickHouse endpoint's ``insert_arrow``: 1M bar-shaped rows, one call.

The endpoint runs as the stack runs it (a detached process on a free port, a fresh temporary
database); the client is the product's :func:`clickhouse_client`. The figure is the baseline
the sink's throughput is read against: what one Arrow insert through HTTP into chdb costs,
with no Kafka and no decoding in front of it. Building the Arrow table is not timed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from bench.common import Result
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.clickhouse import ClickHouseEndpointService
from tradesignals_dagster.warehouse.client import clickhouse_client

ROWS = 1_000_000
RUNS = 3
GOAL_RATIO = 0.5
"""The endpoint should keep at least half of in-process chdb's rate (HTTP and a copy added)."""
DDL = """
CREATE TABLE {name} (
    symbol LowCardinality(String), window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'), open Decimal(18, 4), high Decimal(18, 4),
    low Decimal(18, 4), close Decimal(18, 4), volume UInt64, trades UInt32,
    `ts-id` String
) ENGINE = MergeTree ORDER BY (symbol, window_start)
"""


def bars(rows: int) -> pa.Table:
    """``rows`` volume bars with the flagship's column shapes (decimals, ms timestamps)."""
    start = 1_767_000_000_000
    ts = pa.array(range(start, start + rows), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    price = pa.array([Decimal(100 + i % 500) / 4 for i in range(rows)], pa.decimal128(18, 4))
    return pa.table(
        {
            "symbol": pa.array([f"SYM{i % 400}" for i in range(rows)]),
            "window_start": ts,
            "window_end": ts,
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": pa.array(range(rows), pa.uint64()),
            "trades": pa.array([i % 1000 for i in range(rows)], pa.uint32()),
            "ts-id": pa.array([f"bar-{i}" for i in range(rows)]),
        }
    )


def in_process_rate(table: pa.Table, path: Path) -> float:
    """Rows/s of the same insert straight into chdb in this process (Arrow IPC, timed alike)."""
    import chdb

    conn = chdb.connect(str(path))
    try:
        conn.query(DDL.format(name="direct"))
        started = time.perf_counter()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        cols = ", ".join(f"`{c}`" for c in table.column_names)
        with conn.send_insert(f"INSERT INTO direct ({cols})", "Arrow") as inserter:
            inserter.append(sink.getvalue().to_pybytes())
            inserter.finish()
        return ROWS / (time.perf_counter() - started)
    finally:
        conn.close()


def run() -> list[Result]:
    """Start a private endpoint, insert 1M rows ``RUNS`` times, report the median rows/s."""
    table = bars(ROWS)
    with tempfile.TemporaryDirectory(prefix="bench-ch-") as tmp:
        service = ClickHouseEndpointService(Path(tmp))
        status = service.start(timeout=60.0)
        try:
            client = clickhouse_client(Settings(state_dir=Path(tmp), clickhouse_url=status["url"]))
            rates = []
            for run_no in range(RUNS):
                name = f"bench_bars_{run_no}"
                client.command(DDL.format(name=name))
                started = time.perf_counter()
                summary = client.insert_arrow(name, table)
                elapsed = time.perf_counter() - started
                if summary.written_rows != ROWS or client.command(f"SELECT count() FROM {name}") != ROWS:
                    raise SystemExit(f"insert_arrow wrote {summary.written_rows} rows, not {ROWS}")
                rates.append(ROWS / elapsed)
            size_mb = table.nbytes / 1e6
        finally:
            service.stop()
        direct = in_process_rate(table, Path(tmp) / "direct")
    rate = statistics.median(rates)
    load = os.getloadavg()[0]
    return [
        Result(
            "ClickHouse endpoint insert_arrow, 1M bar rows (HTTP -> chdb MergeTree)",
            f">= {GOAL_RATIO}x in-process chdb",
            rate,
            "rows/s",
            rate >= GOAL_RATIO * direct,
            f"median of {RUNS} inserts of {ROWS:,} rows ({size_mb:.0f} MB Arrow, 10 columns); "
            f"runs {', '.join(f'{r:,.0f}' for r in rates)} rows/s; in-process chdb send_insert "
            f"of the same table {direct:,.0f} rows/s ({rate / direct:.2f}x); load avg {load:.1f}",
        )
    ]
