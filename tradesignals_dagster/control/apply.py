"""One code path for "make the world match the registry", used by the CLI, assets and sensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradesignals_dagster.control.plan import Change, Plan
from tradesignals_dagster.control.schemas import apply_schema_change, plan_schemas
from tradesignals_dagster.control.tables import TABLE_CHANGES, apply_table_change, plan_tables
from tradesignals_dagster.control.topics import apply_topic_change, plan_topics
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.schema_registry import SchemaRegistry
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

TOPIC_CHANGES = {
    "create_topic",
    "reset_topic",
    "alter_topic_config",
    "add_partitions",
    "delete_topic",
}


class PlanBlockedError(TradesignalsError):
    """``apply`` refused: the plan holds a change that must not happen (nothing was applied)."""

    exit_code = 1

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        lines = "\n".join(f"  {n.target}: {n.summary}" for n in plan.blockers)
        super().__init__(f"nothing was applied; fix these first:\n{lines}")


@dataclass
class ApplyResult:
    """What ``apply`` did."""

    applied: list[Change] = field(default_factory=list)
    schema_ids: dict[str, int] = field(default_factory=dict)


class ControlPlane:
    """The Kafka admin and schema registry clients the plan and apply steps share."""

    def __init__(
        self, admin: KafkaAdmin, registry: SchemaRegistry, warehouse: Callable[[], Any] | None = None
    ) -> None:
        self.admin = admin
        self.registry = registry
        self._warehouse_factory = warehouse
        self._warehouse: Any = None

    def warehouse(self) -> Any:
        """The ClickHouse client (connected on first use, so Kafka-only work never needs it)."""
        if self._warehouse is None:
            if self._warehouse_factory is None:
                raise TradesignalsError("this control plane has no ClickHouse configured")
            self._warehouse = self._warehouse_factory()
        return self._warehouse

    @classmethod
    def from_settings(cls, settings: Settings) -> ControlPlane:
        """Clients for the services the settings point at."""
        return cls(
            KafkaAdmin(settings.kafka_config(), settings.request_timeout_s),
            SchemaRegistry(settings.schema_registry_config(), settings.request_timeout_s),
            lambda: _clickhouse(settings),
        )

    def plan(
        self,
        app: StreamingApplication,
        topics: set[str] | None = None,
        subjects: set[str] | None = None,
        on_start: bool = False,
        delete_orphans: bool = False,
        tables: set[str] | None = None,
    ) -> Plan:
        """Diff the registry with the live side. ``topics``/``subjects``/``tables`` narrow it;
        passing only some of them plans only those kinds."""
        plan = Plan()
        everything = topics is None and subjects is None and tables is None
        if topics is not None or everything:
            plan.extend(plan_topics(app, self.admin, topics, on_start, delete_orphans))
        if subjects is not None or everything:
            plan.extend(plan_schemas(app, self.registry, subjects))
        if tables is not None or everything:
            plan.extend(plan_tables(app, self.warehouse, tables))
        return plan

    def apply(self, plan: Plan) -> ApplyResult:
        """Carry out ``plan`` (topics first, then schemas); refuse all of it if it is blocked."""
        if plan.blockers:
            raise PlanBlockedError(plan)
        result = ApplyResult()
        for change in plan.changes:
            if change.kind in TOPIC_CHANGES:
                apply_topic_change(self.admin, change)
        for change in plan.changes:
            if change.kind not in TOPIC_CHANGES and change.kind not in TABLE_CHANGES:
                schema_id = apply_schema_change(self.registry, change)
                if schema_id is not None:
                    result.schema_ids[change.target] = schema_id
        for change in plan.changes:
            if change.kind in TABLE_CHANGES:
                apply_table_change(self.warehouse(), change)
        result.applied = list(plan.changes)
        return result


def _clickhouse(settings: Settings) -> Any:
    from tradesignals_dagster.warehouse.client import clickhouse_client

    return clickhouse_client(settings)
