"""ClickHouse tables in the asset graph: ``kafka/<topic>`` -> ``sinks/<table>`` -> ``clickhouse/<table>``.

* ``sinks/<table>`` (kinds kafka, clickhouse): materializing deploys the table's sink through the
  runtime, like a pipeline (:func:`~tradesignals_dagster.deploy.workloads.deploy_workload`); the
  health and redeploy sensors keep it running.
* ``clickhouse/<table>`` (kind clickhouse): materializing applies the table through the control
  plane (create, ADD COLUMN; a rewrite is refused). Its column schema is the live table's, its
  column lineage maps each Avro field of the topic to the column that holds it, and each
  materialization and observation records rows, bytes on disk, newest event time and the sink's
  lag. ``dagster/last_updated_timestamp`` is the newest *event* time, so Dagster's views of
  when the asset last changed show the data's age, not when someone last looked.

Checks: no duplicated identity (``count()`` equals ``uniqExact(_ts_id)``), completeness against
the topic (:mod:`tradesignals_dagster.warehouse.completeness`) and freshness (the newest
event_time within the table's ``freshness_s``). The ``table_observations``
sensor records the facts every minute so the UI plots them.
"""

import contextlib
import time
from typing import Any

import dagster as dg
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tradesignals_dagster.defs.keys import WAREHOUSE_GROUP, sink_key, table_key, topic_key
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.deploy.workloads import deploy_workload, sink_runtime_key, workload_lag
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.tables import StreamingTable, event_time_of
from tradesignals_dagster.warehouse.client import clickhouse_client
from tradesignals_dagster.warehouse.ddl import data_columns, table_columns

LAST_UPDATED = "dagster/last_updated_timestamp"
OBSERVE_EVERY_S = 60


def column_schema(table: StreamingTable, schema: dict[str, Any]) -> dg.TableSchema:
    """The table's columns as ClickHouse types (schema fields, then the sink's metadata)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.type, description=c.comment or None)
            for c in table_columns(table, schema)
        ]
    )


def column_lineage(table: StreamingTable, schema: dict[str, Any]) -> dg.TableColumnLineage:
    """Each data column from the Avro field of the same name on the table's topic."""
    return dg.TableColumnLineage(
        deps_by_column={
            c.name: [dg.TableColumnDep(asset_key=topic_key(table.topic_id), column_name=c.source or c.name)]
            for c in data_columns(table, schema)
        }
    )


def table_facts(
    client: Client, table: StreamingTable, schema: dict[str, Any], lag: int | None
) -> dict[str, Any]:
    """Rows, bytes on disk, newest event time and the sink's lag, as asset metadata."""
    event = event_time_of(table, schema)
    newest = f"toUnixTimestamp64Milli(max({event}))" if event else "toInt64(0)"
    rows, newest_ms = client.query(f"SELECT count(), {newest} FROM {table.qualified()}").result_rows[0]
    nbytes = client.query(
        "SELECT sum(bytes_on_disk) FROM system.parts "
        "WHERE active AND database = {d:String} AND table = {t:String}",
        parameters={"d": table.database, "t": table.key},
    ).result_rows[0][0]
    facts: dict[str, Any] = {
        "rows": int(rows),
        "bytes_on_disk": int(nbytes or 0),
        "sink_lag": -1 if lag is None else lag,
    }
    if event and int(rows) > 0:
        facts["newest_event_time"] = dg.MetadataValue.timestamp(int(newest_ms) / 1000)
        facts[LAST_UPDATED] = dg.MetadataValue.timestamp(int(newest_ms) / 1000)
    return facts


def _facts_now(tradesignals: TradesignalsResource, table_id: str) -> dict[str, Any]:
    app = tradesignals.app()
    table = app.tables[table_id]
    lag = None  # the lag is informative: a broker that does not answer it yet must not fail the rest
    with contextlib.suppress(TradesignalsError):
        lag = workload_lag(tradesignals.control(), app, sink_runtime_key(table_id))
    client = clickhouse_client(tradesignals.settings())
    return table_facts(client, table, app.schemas[table.topic_id], lag)


def _failure(exc: TradesignalsError) -> dg.Failure:
    return dg.Failure(description=str(exc))


def _sink_asset(app: StreamingApplication, table_id: str) -> dg.AssetsDefinition:
    table = app.tables[table_id]

    @dg.asset(
        key=sink_key(table_id),
        group_name=WAREHOUSE_GROUP,
        deps=[topic_key(table.topic_id)],
        kinds={"kafka", "clickhouse"},
        description=f"Continuous sink of topic {table.topic_id} into {table.qualified()}, exactly once "
        f"(process `{sink_runtime_key(table_id)}`)",
        metadata={"consumer_group": table.consumer_group(), "dead_letter_topic": table.dlq_topic()},
        tags={"tradesignals/kind": "sink"},
    )
    def _sink(context: dg.AssetExecutionContext, tradesignals: TradesignalsResource) -> dg.MaterializeResult:
        force = context.run.tags.get("tradesignals/force") == "true"
        key = sink_runtime_key(table_id)
        try:
            desired, status = deploy_workload(
                tradesignals.app(),
                key,
                tradesignals.settings(),
                tradesignals.control(),
                tradesignals.runtime(),
                force,
            )
        except TradesignalsError as exc:
            raise _failure(exc) from exc
        context.log.info(
            f"{key}: {status.state} ({status.runtime} {status.runtime_id}) version {desired.version}"
        )
        return dg.MaterializeResult(
            metadata={
                "runtime": status.runtime,
                "runtime_id": status.runtime_id or "",
                "state": status.state,
                "version": desired.version,
                "restarts": status.restarts,
            },
            data_version=dg.DataVersion(desired.version),
        )

    return _sink


def _table_asset(app: StreamingApplication, table_id: str) -> dg.AssetsDefinition:
    table = app.tables[table_id]
    schema = app.schemas[table.topic_id]

    @dg.asset(
        key=table_key(table_id),
        group_name=WAREHOUSE_GROUP,
        deps=[sink_key(table_id)],
        kinds={"clickhouse"},
        description=table.doc or f"ClickHouse table {table.qualified()} of topic {table.topic_id}",
        metadata={
            "dagster/column_schema": column_schema(table, schema),
            "dagster/column_lineage": column_lineage(table, schema),
            "dagster/table_name": table.qualified(),
        },
        tags={"tradesignals/kind": "table"},
    )
    def _table(context: dg.AssetExecutionContext, tradesignals: TradesignalsResource) -> dg.MaterializeResult:
        try:
            control = tradesignals.control()
            plan = control.plan(tradesignals.app(), tables={table_id})
            control.apply(plan)
            facts = _facts_now(tradesignals, table_id)
        except (TradesignalsError, ClickHouseError) as exc:
            raise dg.Failure(description=str(exc)) from exc
        for change in plan.changes:
            context.log.info(f"{change.target}: {change.summary}")
        return dg.MaterializeResult(metadata={**facts, "changes": [c.summary for c in plan.changes]})

    return _table


def _duplicates_check(table_id: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table_key(table_id),
        name="no_duplicated_identity",
        description="Every record identity (_ts_id, the runtime's ts-id header) is in the table once: "
        "count() equals uniqExact(_ts_id), without FINAL.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        try:
            table = tradesignals.app().tables[table_id]
            rows, ids = (
                clickhouse_client(tradesignals.settings())
                .query(f"SELECT count(), uniqExact(_ts_id) FROM {table.qualified()}")
                .result_rows[0]
            )
        except (TradesignalsError, ClickHouseError) as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        return dg.AssetCheckResult(
            passed=int(rows) == int(ids),
            metadata={"rows": int(rows), "distinct_ids": int(ids), "duplicates": int(rows) - int(ids)},
        )

    return _check


def _completeness_check(table_id: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table_key(table_id),
        name="complete_against_topic",
        description="Over the last 50,000 committed offsets of each partition, every message of the "
        "topic is in the table or in the dead-letter topic, and the table holds nothing else.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        from tradesignals_dagster.warehouse.completeness import check_completeness

        try:
            app, settings = tradesignals.app(), tradesignals.settings()
            table = app.tables[table_id]
            result = check_completeness(
                settings, clickhouse_client(settings), table, app.topics[table.topic_id].num_partitions
            )
        except (TradesignalsError, ClickHouseError) as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        return dg.AssetCheckResult(
            passed=all(p.complete for p in result),
            metadata={
                "messages_in_window": sum(p.in_topic for p in result),
                "rows_in_window": sum(p.in_table for p in result),
                "dead_lettered": sum(p.dead_lettered for p in result),
                "partitions": {
                    str(p.partition): f"[{p.start}, {p.committed}): {p.in_topic} in topic, {p.in_table} in "
                    f"table, {p.dead_lettered} dead-lettered, missing {p.missing}, "
                    f"unexpected {p.unexpected}, doubled {p.doubled}"
                    for p in result
                },
            },
        )

    return _check


def _freshness_check(app: StreamingApplication, table_id: str) -> dg.AssetChecksDefinition:
    """The newest event in the table is at most ``freshness_s`` old.

    Not Dagster's ``FreshnessPolicy`` / last-update checks: those measure when the asset was last
    materialized or observed, and the observation sensor records one every minute whether data
    arrives or not; what users need fresh is the data, so the check reads max(event_time).
    """
    window = app.tables[table_id].freshness_s

    @dg.asset_check(
        asset=table_key(table_id),
        name="fresh",
        description=f"The newest event_time in the table is at most {window:g} s old.",
    )
    def _check(tradesignals: TradesignalsResource) -> dg.AssetCheckResult:
        try:
            app = tradesignals.app()
            table = app.tables[table_id]
            facts = table_facts(
                clickhouse_client(tradesignals.settings()), table, app.schemas[table.topic_id], None
            )
        except (TradesignalsError, ClickHouseError) as exc:
            return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
        newest = facts.get("newest_event_time")
        age = None if newest is None else time.time() - float(newest.value)
        return dg.AssetCheckResult(
            passed=age is not None and age <= window,
            metadata={
                "age_s": -1.0 if age is None else round(age, 1),
                "window_s": window,
                "rows": facts["rows"],
                **({"newest_event_time": newest} if newest is not None else {}),
            },
        )

    return _check


@dg.sensor(
    name="table_observations",
    minimum_interval_seconds=OBSERVE_EVERY_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records rows, bytes on disk, newest event time and sink lag of every ClickHouse table.",
)
def table_observations(
    context: dg.SensorEvaluationContext, tradesignals: TradesignalsResource
) -> dg.SensorResult:
    """One observation per table that answers; a table that does not is logged and skipped."""
    try:
        tables = sorted(tradesignals.app().tables)
    except TradesignalsError as exc:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"cannot evaluate: {exc}"))
    events = []
    for table_id in tables:
        try:
            events.append(
                dg.AssetObservation(
                    asset_key=table_key(table_id), metadata=_facts_now(tradesignals, table_id)
                )
            )
        except Exception as exc:  # a missing table or a down endpoint must not stop the others
            context.log.warning(f"table {table_id}: not observed: {exc}")
    return dg.SensorResult(asset_events=events)


def build_warehouse(app: StreamingApplication) -> dict[str, list[Any]]:
    """The assets, checks and sensors of the registry's tables (empty when it has none)."""
    tables = sorted(app.tables)
    return {
        "assets": [a for t in tables for a in (_sink_asset(app, t), _table_asset(app, t))],
        "asset_checks": [
            c
            for t in tables
            for c in (_duplicates_check(t), _completeness_check(t), _freshness_check(app, t))
        ],
        "sensors": [table_observations] if tables else [],
    }
