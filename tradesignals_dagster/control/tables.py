"""Tables: the ClickHouse databases and tables the registry implies, their diff with the live
server, and applying it.

Compatible changes are applied: a missing database or table is created, a schema field that
has no column yet becomes ``ALTER TABLE ... ADD COLUMN`` (old rows read the column's default),
a changed ``ttl_days`` becomes ``MODIFY TTL``. A change that needs the table rewritten - a
column type change, a new ORDER BY or PARTITION BY - is reported as a blocking notice and
never applied: ``apply`` refuses the whole plan. A column whose field left the schema is kept
(its data stays queryable) and noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from tradesignals_dagster.control.plan import Change, Notice, Plan
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.registry.tables import StreamingTable
from tradesignals_dagster.warehouse.ddl import (
    add_column_sql,
    create_database_sql,
    create_table_sql,
    modify_ttl_sql,
    partition_expression,
    sorting_key,
    table_columns,
    ttl_expression,
)
from tradesignals_dagster.warehouse.errors import WarehouseError

TABLE_CHANGES = frozenset({"create_database", "create_table", "add_column", "modify_ttl"})


def _query(client: Client, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    try:
        return [tuple(row) for row in client.query(sql, parameters=params).result_rows]
    except ClickHouseError as exc:
        raise WarehouseError(f"ClickHouse refused a planning query: {exc}") from exc


def plan_tables(
    app: StreamingApplication, client_factory: Callable[[], Client], only: set[str] | None = None
) -> Plan:
    """Compare each registry table with ClickHouse; ``only`` limits it to those table ids.

    ClickHouse is contacted only when there is a table to plan.
    """
    plan = Plan()
    tables = {k: t for k, t in sorted(app.tables.items()) if only is None or k in only}
    if not tables:
        return plan
    client = client_factory()
    databases = {row[0] for row in _query(client, "SELECT name FROM system.databases")}
    for table in tables.values():
        if table.database not in databases:
            databases.add(table.database)
            plan.changes.append(
                Change(
                    "create_database",
                    table.database,
                    "create database",
                    {"sql": create_database_sql(table.database)},
                )
            )
        plan.extend(_plan_table(client, table, app.schemas[table.topic_id]))
    return plan


def _plan_table(client: Client, table: StreamingTable, schema: dict[str, Any]) -> Plan:
    plan = Plan()
    target = table.qualified()
    rows = _query(
        client,
        "SELECT sorting_key, partition_key, engine_full FROM system.tables "
        "WHERE database = {db:String} AND name = {t:String}",
        db=table.database,
        t=table.key,
    )
    if not rows:
        columns = table_columns(table, schema)
        plan.changes.append(
            Change(
                "create_table",
                target,
                f"create with {len(columns)} columns from {table.topic_id}'s schema, "
                f"ORDER BY ({sorting_key(table)})",
                {"sql": create_table_sql(table, schema), "topic": table.topic_id},
            )
        )
        return plan
    live_sorting, live_partition, engine_full = rows[0]
    live = _query(
        client,
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position",
        db=table.database,
        t=table.key,
    )
    _plan_keys(plan, table, schema, live_sorting, live_partition)
    _plan_columns(plan, table, schema, dict(live))
    ttl = ttl_expression(table, schema)
    has_ttl = " TTL " in f" {engine_full} "
    if (ttl is None and has_ttl) or (ttl is not None and f"TTL {ttl}" not in engine_full):
        plan.changes.append(
            Change(
                "modify_ttl",
                target,
                f"TTL -> {ttl or 'none'}",
                {"sql": modify_ttl_sql(table, ttl)},
            )
        )
    return plan


def _plan_keys(
    plan: Plan, table: StreamingTable, schema: dict[str, Any], live_sorting: str, live_partition: str
) -> None:
    target = table.qualified()
    wanted = sorting_key(table)
    if live_sorting != wanted:
        plan.notices.append(
            Notice(
                "table_needs_rewrite",
                target,
                f"ORDER BY ({live_sorting}) -> ({wanted}) needs the table rewritten "
                "(create a new table and INSERT ... SELECT); not applied",
                blocking=True,
                data={"order_by": [live_sorting, wanted]},
            )
        )
    partition = partition_expression(table, schema) or ""
    if live_partition != partition:
        plan.notices.append(
            Notice(
                "table_needs_rewrite",
                target,
                f"PARTITION BY {live_partition or 'none'} -> {partition or 'none'} needs the table "
                "rewritten; not applied",
                blocking=True,
                data={"partition_by": [live_partition, partition]},
            )
        )


def _plan_columns(plan: Plan, table: StreamingTable, schema: dict[str, Any], live: dict[str, str]) -> None:
    target = table.qualified()
    previous: str | None = None
    desired = table_columns(table, schema)
    for column in desired:
        current = live.get(column.name)
        if current is None:
            plan.changes.append(
                Change(
                    "add_column",
                    target,
                    f"add column {column.name} {column.type}",
                    {"sql": add_column_sql(table, column, previous), "column": column.name},
                )
            )
        elif current != column.type:
            plan.notices.append(
                Notice(
                    "table_needs_rewrite",
                    target,
                    f"column {column.name}: type {current} -> {column.type} needs the column "
                    "rewritten; not applied",
                    blocking=True,
                    data={"column": column.name, "from": current, "to": column.type},
                )
            )
        previous = column.name
    names = {c.name for c in desired}
    for name in live:
        if name not in names:
            plan.notices.append(
                Notice(
                    "column_not_in_schema",
                    target,
                    f"column {name} is no longer in {table.topic_id}'s schema; kept (drop it by hand)",
                )
            )


def apply_table_change(client: Client, change: Change) -> None:
    """Run one table change's statement."""
    try:
        client.command(change.data["sql"])
    except ClickHouseError as exc:
        raise WarehouseError(f"{change.kind} {change.target} failed: {exc}") from exc
