"""``datasets/<id>`` assets: daily-partitioned Parquet exports of ClickHouse tables.

Each dataset of the registry becomes one asset with a :class:`dagster.DailyPartitionsDefinition`
(UTC days from ``start_date``; today's partition included, so the day in progress can be
exported on demand), downstream of ``clickhouse/<table>``. Materializing a partition runs
:func:`~tradesignals_dagster.datasets.export.export_day`. A schedule materializes each day
``delay_minutes`` after it closes; past days are backfilled from the asset's partitions page.

Why a schedule and not ``AutomationCondition.on_cron``: ``on_cron`` waits until every upstream
asset was updated after the tick, but the table is filled continuously by its sink, not
materialized per day, so the condition would never hold.

Two asset checks run with every materialization and hourly on their own:

- ``rows_match_table``: for each exported day of the last ``LOOKBACK_DAYS`` days, the Parquet
  row count (from footers) equals the table's count for that day now. Rows that arrived after
  the export fail the check, naming the days to re-materialize.
- ``schema_matches_registry``: every file of the newest exported day has exactly the Arrow
  schema the registry defines (columns, order, types, nullability).

No ``from __future__ import annotations`` here: Dagster reads the ``context`` and resource
annotations of the decorated functions at definition time.
"""

from datetime import date, timedelta
from typing import Any, cast

import dagster as dg
from pyarrow import fs as pafs

from tradesignals_dagster.datasets.athena import athena_ddl
from tradesignals_dagster.datasets.export import export_day, parquet_summary, table_day_count
from tradesignals_dagster.datasets.spec import DatasetSpec, dataset_spec
from tradesignals_dagster.datasets.store import ObjectStore, object_store
from tradesignals_dagster.defs.keys import DATASETS_GROUP, table_key
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.client import clickhouse_client

GROUP = DATASETS_GROUP
LOOKBACK_DAYS = 14
"""How many recent days the row-count check compares with the table."""
CHECK_CRON = "20 * * * *"


def dataset_key(dataset_id: str) -> dg.AssetKey:
    """The asset of a Parquet dataset."""
    return dg.AssetKey(["datasets", dataset_id])


def table_asset_key(table_id: str) -> dg.AssetKey:
    """The ClickHouse table asset a dataset is exported from (``clickhouse/<table>``)."""
    return table_key(table_id)


def partitions(spec: DatasetSpec) -> dg.DailyPartitionsDefinition:
    """UTC days from ``start_date`` (through ``end_date`` if set), today's included."""
    ds = spec.dataset
    end = (ds.end_date + timedelta(days=1)).isoformat() if ds.end_date else None
    return dg.DailyPartitionsDefinition(
        start_date=ds.start_date.isoformat(), end_date=end, timezone="UTC", end_offset=0 if end else 1
    )


def exported_days(store: ObjectStore, spec: DatasetSpec) -> list[date]:
    """The days that have a ``dt=YYYY-MM-DD`` folder under the dataset, oldest first."""
    selector = pafs.FileSelector(store.path(spec.key), allow_not_found=True, recursive=False)
    days = []
    for info in store.call("list", lambda: store.filesystem.get_file_info(selector)):
        name = info.base_name
        if info.type == pafs.FileType.Directory and name.startswith("dt="):
            try:
                days.append(date.fromisoformat(name[3:]))
            except ValueError:
                continue
    return sorted(days)


def rows_match(client: Any, store: ObjectStore, spec: DatasetSpec, days: list[date]) -> dict[str, Any]:
    """Per day: the exported and the table's row count; ``late`` lists days that differ."""
    compared: dict[str, dict[str, int]] = {}
    for day in days:
        exported = parquet_summary(store, spec, day)
        if not exported["files"]:
            continue
        compared[day.isoformat()] = {
            "exported": exported["rows"],
            "table": table_day_count(client, spec, day),
        }
    late = [d for d, c in compared.items() if c["exported"] != c["table"]]
    return {"compared": compared, "late": late}


def schema_problems(store: ObjectStore, spec: DatasetSpec, day: date) -> list[str]:
    """How the day's files' schemas differ from the registry's (empty: they match)."""
    problems = []
    for i, schema in enumerate(parquet_summary(store, spec, day)["schemas"]):
        found = schema.remove_metadata()
        if not found.equals(spec.schema):
            problems.append(f"part {i}: {found} != {spec.schema}")
    return problems


def _materialize(
    dataset_id: str, context: dg.AssetExecutionContext, tradesignals: TradesignalsResource
) -> Any:
    settings = tradesignals.settings()
    spec = dataset_spec(tradesignals.app(), dataset_id)
    day = date.fromisoformat(context.partition_key)
    result = export_day(clickhouse_client(settings), object_store(settings), spec, day)
    context.log.info(
        f"{dataset_id} {day}: {result.rows} rows in {len(result.files)} file(s), {result.bytes} bytes"
    )
    meta: dict[str, Any] = result.metadata()
    meta["dagster/row_count"] = result.rows
    meta["path"] = dg.MetadataValue.path(result.path)
    meta["file_uris"] = dg.MetadataValue.json(result.files)
    return dg.MaterializeResult(metadata=meta)


def dataset_asset(spec: DatasetSpec, settings: Settings) -> dg.AssetsDefinition:
    """The asset of one dataset, with its Athena DDL and location as definition metadata."""
    dataset_id = spec.key
    location = object_store(settings).uri(spec.key)
    ds = spec.dataset

    @dg.asset(
        key=dataset_key(dataset_id),
        group_name=GROUP,
        partitions_def=partitions(spec),
        deps=[table_asset_key(ds.table_id)],
        kinds={"parquet"},
        description=ds.doc or f"Daily Parquet export of ClickHouse table {spec.table}.",
        metadata={
            "table": spec.table,
            "location": location,
            "layout": f"{location}/dt=YYYY-MM-DD/part-NNNNN.parquet",
            "compression": ds.compression,
            "row_group_rows": ds.row_group_rows,
            "athena_ddl": dg.MetadataValue.md(f"```sql\n{athena_ddl(spec, location)}\n```"),
        },
    )
    def _asset(context: dg.AssetExecutionContext, tradesignals: TradesignalsResource) -> Any:
        return _materialize(dataset_id, context, tradesignals)

    return _asset


def dataset_checks(spec: DatasetSpec) -> list[dg.AssetChecksDefinition]:
    """``rows_match_table`` and ``schema_matches_registry`` for one dataset."""
    dataset_id = spec.key
    hourly = cast(
        "dg.AutomationCondition[dg.AssetCheckKey]", dg.AutomationCondition.cron_tick_passed(CHECK_CRON, "UTC")
    )

    @dg.asset_check(
        asset=dataset_key(dataset_id),
        name="rows_match_table",
        description=f"Exported row counts of the last {LOOKBACK_DAYS} days equal the table's now; "
        "a difference means rows arrived after the export: re-materialize those days.",
        automation_condition=hourly,
    )
    def _rows(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        settings = tradesignals.settings()
        current = dataset_spec(tradesignals.app(), dataset_id)
        store = object_store(settings)
        days = exported_days(store, current)[-LOOKBACK_DAYS:]
        found = rows_match(clickhouse_client(settings), store, current, days)
        return dg.AssetCheckResult(
            passed=not found["late"],
            metadata={
                "late_days": dg.MetadataValue.json(found["late"]),
                "compared": dg.MetadataValue.json(found["compared"]),
            },
            description=(
                f"re-materialize {', '.join(found['late'])}: the table changed after the export"
                if found["late"]
                else f"{len(found['compared'])} day(s) match the table"
            ),
        )

    @dg.asset_check(
        asset=dataset_key(dataset_id),
        name="schema_matches_registry",
        description="The newest exported day's Parquet schema is exactly the registry's.",
        automation_condition=hourly,
    )
    def _schema(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        current = dataset_spec(tradesignals.app(), dataset_id)
        store = object_store(tradesignals.settings())
        days = exported_days(store, current)
        problems = schema_problems(store, current, days[-1]) if days else []
        return dg.AssetCheckResult(
            passed=not problems,
            metadata={
                "day": days[-1].isoformat() if days else None,
                "problems": dg.MetadataValue.json(problems),
            },
        )

    return [_rows, _schema]


def dataset_schedule(spec: DatasetSpec, asset: dg.AssetsDefinition) -> dg.ScheduleDefinition:
    """Daily at UTC midnight + ``delay_minutes`` (mod 24 h), exporting the day that closed
    ``delay_minutes`` before the tick."""
    delay = spec.dataset.delay_minutes
    job = dg.define_asset_job(
        name=f"export_{spec.key}",
        selection=dg.AssetSelection.assets(asset),
    )

    @dg.schedule(
        name=f"export_{spec.key}_daily",
        cron_schedule=f"{delay % 60} {(delay // 60) % 24} * * *",
        execution_timezone="UTC",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Exports each day of {spec.key} {delay} minute(s) after it closes (UTC).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time
        day = (tick - timedelta(minutes=delay)).date() - timedelta(days=1)
        if day < spec.dataset.start_date or (spec.dataset.end_date and day > spec.dataset.end_date):
            return dg.SkipReason(f"{day} is outside the dataset's range")
        return dg.RunRequest(run_key=f"{spec.key}-{day.isoformat()}", partition_key=day.isoformat())

    return _schedule


def build_datasets(app: StreamingApplication, settings: Settings) -> dict[str, list[Any]]:
    """Assets, checks and schedules of every dataset (``Definitions`` keyword lists)."""
    out: dict[str, list[Any]] = {"assets": [], "asset_checks": [], "schedules": []}
    for dataset_id in sorted(app.datasets):
        spec = dataset_spec(app, dataset_id)
        asset = dataset_asset(spec, settings)
        out["assets"].append(asset)
        out["asset_checks"] += dataset_checks(spec)
        out["schedules"].append(dataset_schedule(spec, asset))
    return out
