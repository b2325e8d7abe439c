"""``datasets/<id>`` assets in Dagster against the local S3 server and ClickHouse endpoint:
a partition materializes with its metadata, the checks pass, and rows that arrive after the
export make ``rows_match_table`` fail naming the day, until the day is re-materialized."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from test_dataset_export import DAY, SCHEMA, bars

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.datasets import dataset_key, table_asset_key
from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.stack.s3 import BUCKET, S3ProxyService
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.ddl import create_database_sql, create_table_sql


@pytest.fixture
def defs_env(
    tmp_path: Path, clickhouse_endpoint: Any, s3_server: S3ProxyService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.Definitions, Any]]:
    database = f"t_{uuid.uuid4().hex[:10]}"
    registry = tmp_path / "registry"
    (registry / "schemas").mkdir(parents=True)
    (registry / "schemas" / "bars.yaml").write_text(SCHEMA)
    (registry / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  bars: {value_schema_id: bars}\n"
        f"Tables:\n  bars:\n    topic_id: bars\n    database: {database}\n    order_by: [symbol, timestamp]\n"
        "Datasets:\n  bar_days:\n    table_id: bars\n    start_date: 2026-01-01\n    delay_minutes: 90\n"
    )
    creds = s3_server.credentials()
    env = {
        "TRADESIGNALS_REGISTRY": str(registry),
        "TRADESIGNALS_STATE_DIR": str(tmp_path / "state"),
        "TRADESIGNALS_CLICKHOUSE_URL": clickhouse_endpoint.url,
        "TRADESIGNALS_CLICKHOUSE_PASSWORD": clickhouse_endpoint.password,
        "TRADESIGNALS_OBJECT_STORE_URL": f"s3://{BUCKET}/dagster-{uuid.uuid4().hex[:8]}",
        "TRADESIGNALS_OBJECT_STORE_ENDPOINT": str(s3_server.endpoint),
        "AWS_ACCESS_KEY_ID": creds["access_key"],
        "AWS_SECRET_ACCESS_KEY": creds["secret_key"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = load_registry(registry).require()
    client = clickhouse_client(clickhouse_endpoint.settings)
    client.command(create_database_sql(database))
    client.command(create_table_sql(app.tables["bars"], app.schemas["bars"]))
    try:
        yield build_definitions(Settings()), client
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")


def _checks(defs: dg.Definitions) -> dict[str, dg.AssetCheckEvaluation]:
    job = dg.define_asset_job(
        "checks_only", selection=dg.AssetSelection.checks_for_assets(dataset_key("bar_days"))
    )
    result = (
        dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
        .resolve_job_def("checks_only")
        .execute_in_process()
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_partition_materializes_and_late_rows_fail_the_check(defs_env: tuple[dg.Definitions, Any]) -> None:
    defs, client = defs_env
    asset = defs.resolve_assets_def(dataset_key("bar_days"))
    assert table_asset_key("bars") in asset.asset_deps[dataset_key("bar_days")]
    assert "projection.dt.range" in asset.metadata_by_key[dataset_key("bar_days")]["athena_ddl"].value
    keys = asset.partitions_def.get_partition_keys() if asset.partitions_def else []
    assert keys[0] == "2026-01-01" and keys[-1] == date.today().isoformat()

    table = f"{asset.metadata_by_key[dataset_key('bar_days')]['table']}"
    client.insert_arrow(table, bars(DAY, 3_000))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key=DAY.isoformat(), asset_selection=[dataset_key("bar_days")], raise_on_error=True
    )
    mat = result.asset_materializations_for_node(asset.node_def.name)[0]
    assert mat.metadata["rows"].value == 3_000 and mat.metadata["files"].value == 1
    assert mat.metadata["min_event_time"].value == "2026-01-05T00:00:00+00:00"

    checks = _checks(defs)
    assert checks["rows_match_table"].passed and checks["schema_matches_registry"].passed

    client.insert_arrow(table, bars(DAY, 5, start_seq=90_000))
    checks = _checks(defs)
    assert not checks["rows_match_table"].passed
    assert checks["rows_match_table"].metadata["late_days"].value == ["2026-01-05"]

    job.execute_in_process(partition_key=DAY.isoformat(), asset_selection=[dataset_key("bar_days")])
    assert _checks(defs)["rows_match_table"].passed


def test_the_schedule_exports_the_day_that_closed_delay_minutes_ago(
    defs_env: tuple[dg.Definitions, Any],
) -> None:
    defs, _ = defs_env
    schedule = defs.resolve_schedule_def("export_bar_days_daily")
    assert schedule.cron_schedule == "30 1 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 6, 1, 30, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    request = schedule.evaluate_tick(context).run_requests
    assert request is not None and request[0].partition_key == "2026-01-05"
