"""plan/apply for ClickHouse tables against the local endpoint, reached only through its URL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ClickHouseEndpoint

from tradesignals_dagster.cli import main
from tradesignals_dagster.control.apply import ControlPlane, PlanBlockedError
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.warehouse.client import clickhouse_client

BASE_FIELDS: list[dict[str, Any]] = [
    {"name": "symbol", "type": "string"},
    {"name": "timestamp", "type": "long", "logical_type": "timestamp-millis"},
    {"name": "price", "type": "bytes", "logical_type": "decimal", "precision": 12, "scale": 4},
    {"name": "size", "type": "int"},
]


def _registry(root: Path, db: str, fields: list[dict[str, Any]], order_by: list[str]) -> Path:
    app = {
        "StreamingApplication": {
            "id": "t",
            "Topics": {
                "trades": {
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "value_schema": {"name": "T", "fields": fields},
                }
            },
            "Tables": {
                "trades_t": {"topic_id": "trades", "database": db, "order_by": order_by, "ttl_days": 30}
            },
        }
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.yaml").write_text(yaml.safe_dump(app, sort_keys=False))
    return root


def _columns(ep: ClickHouseEndpoint, db: str) -> dict[str, str]:
    client = clickhouse_client(ep.settings)
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'trades_t'",
        parameters={"d": db},
    ).result_rows
    return {r[0]: r[1] for r in rows}


def test_create_then_add_column_then_refuse_rewrites(
    clickhouse_endpoint: ClickHouseEndpoint, tmp_path: Path
) -> None:
    db = f"db_{uuid.uuid4().hex[:10]}"
    control = ControlPlane.from_settings(clickhouse_endpoint.settings)
    reg = _registry(tmp_path / "r1", db, BASE_FIELDS, ["symbol", "timestamp"])
    app = load_application(reg)
    plan = control.plan(app, tables={"trades_t"})
    assert [c.kind for c in plan.changes] == ["create_database", "create_table"]
    control.apply(plan)
    cols = _columns(clickhouse_endpoint, db)
    assert cols["timestamp"] == "DateTime64(3, 'UTC')" and cols["price"] == "Decimal(12, 4)"
    assert {"_ts_id", "_partition", "_offset"} <= set(cols)
    assert control.plan(app, tables={"trades_t"}).empty

    grown = [*BASE_FIELDS, {"name": "venue", "type": ["null", "string"], "default": None}]
    app2 = load_application(_registry(tmp_path / "r2", db, grown, ["symbol", "timestamp"]))
    plan = control.plan(app2, tables={"trades_t"})
    assert [(c.kind, c.data["column"]) for c in plan.changes] == [("add_column", "venue")]
    assert "ALTER TABLE" in plan.changes[0].data["sql"]
    control.apply(plan)
    assert _columns(clickhouse_endpoint, db)["venue"] == "LowCardinality(Nullable(String))"

    retyped = [*grown[:3], {"name": "size", "type": "long"}, grown[4]]
    app3 = load_application(_registry(tmp_path / "r3", db, retyped, ["symbol", "size"]))
    plan = control.plan(app3, tables={"trades_t"})
    kinds = {n.kind for n in plan.blockers}
    assert kinds == {"table_needs_rewrite"} and len(plan.blockers) == 2, plan.render()
    assert any("size: type Int32 -> Int64" in n.summary for n in plan.blockers)
    assert any("ORDER BY (symbol, timestamp) -> (symbol, size)" in n.summary for n in plan.blockers)
    with pytest.raises(PlanBlockedError):
        control.apply(plan)
    assert _columns(clickhouse_endpoint, db)["size"] == "Int32"


def test_cli_plan_shows_tables_and_refuses(
    clickhouse_endpoint: ClickHouseEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = f"db_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("TRADESIGNALS_CLICKHOUSE_URL", clickhouse_endpoint.url)
    monkeypatch.setenv("TRADESIGNALS_CLICKHOUSE_PASSWORD", clickhouse_endpoint.password)
    reg = _registry(tmp_path / "a", db, BASE_FIELDS, ["symbol", "timestamp"])
    assert main(["plan", "--registry", str(reg), "--table", "trades_t"]) == 0
    out = capsys.readouterr().out
    assert f"+ {db}.trades_t: create with" in out and f"+ {db}: create database" in out
    assert main(["apply", "--registry", str(reg), "--table", "trades_t", "--json"]) == 0
    capsys.readouterr()
    reg2 = _registry(tmp_path / "b", db, BASE_FIELDS, ["timestamp"])
    assert main(["plan", "--registry", str(reg2), "--table", "trades_t", "--json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    assert plan["blocked"] and plan["notices"][0]["kind"] == "table_needs_rewrite"
    assert main(["apply", "--registry", str(reg2), "--table", "trades_t"]) == 1
    assert (
        clickhouse_client(clickhouse_endpoint.settings).command(
            f"SELECT sorting_key FROM system.tables WHERE database = '{db}' AND name = 'trades_t'"
        )
        == "symbol, timestamp"
    )
    assert clickhouse_endpoint.password not in capsys.readouterr().out
