"""A table's sink is a runtime workload like a pipeline: its desired state (command, environment
without secrets, hashes that change when the table, its schema or the sink's code does) and its
place in the one list of workloads the CLI and the sensors walk."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import SecretStr

from tradesignals_dagster.defs.keys import sink_key, workload_key
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.workloads import is_known, table_of, workload_keys
from tradesignals_dagster.registry import load_registry
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

SCHEMA = """
namespace: t
name: Trade
type: record
fields:
  - {name: symbol, type: string}
  - {name: timestamp, type: long, logical_type: timestamp-millis}
"""


def _app(
    tmp_path: Path, order_by: str = "[symbol, timestamp]", extra_field: str = ""
) -> StreamingApplication:
    folder = tmp_path / "reg"
    (folder / "schemas").mkdir(parents=True, exist_ok=True)
    (folder / "schemas" / "trades.yaml").write_text(SCHEMA + extra_field)
    (folder / "pipelines.yaml").write_text(
        "StreamingApplication:\n  id: app\nTopics:\n  trades: {value_schema_id: trades}\n"
        f"Tables:\n  trades_t:\n    topic_id: trades\n    order_by: {order_by}\n"
    )
    return load_registry(folder).require()


def test_a_sink_is_listed_beside_pipelines_under_its_own_key(tmp_path: Path) -> None:
    app = _app(tmp_path)
    assert workload_keys(app) == ["sink.trades_t"]
    assert table_of("sink.trades_t") == "trades_t" and table_of("trades_t") is None
    assert is_known(app, "sink.trades_t") and not is_known(app, "sink.other")
    assert workload_key("sink.trades_t") == sink_key("trades_t")
    assert workload_key("bars").to_user_string() == "pipelines/bars"


def test_the_sink_desired_state_runs_the_sink_module_without_secrets(tmp_path: Path) -> None:
    app = _app(tmp_path)
    settings = Settings(
        registry=tmp_path / "reg",
        state_dir=tmp_path / "state",
        clickhouse_url="http://alice:s3cret@127.0.0.1:8123",
        clickhouse_password=SecretStr("pw-123"),
    )
    desired = desired_state(app, "sink.trades_t", settings)
    assert desired.key == "sink.trades_t"
    assert desired.command == (
        sys.executable,
        "-m",
        "tradesignals_dagster.warehouse.sink",
        "--table",
        "trades_t",
    )
    assert desired.env["TRADESIGNALS_REGISTRY"] == str(tmp_path / "reg")
    assert "TRADESIGNALS_CLICKHOUSE_URL" not in desired.env  # it carries credentials
    assert not any("s3cret" in v or "pw-123" in v for v in desired.env.values())
    plain = Settings(
        registry=tmp_path / "reg", state_dir=tmp_path / "state", clickhouse_url="http://127.0.0.1:9"
    )
    assert (
        desired_state(app, "sink.trades_t", plain).env["TRADESIGNALS_CLICKHOUSE_URL"] == "http://127.0.0.1:9"
    )


def test_the_version_changes_with_the_table_or_its_schema_only(tmp_path: Path) -> None:
    settings = Settings(registry=tmp_path / "reg", state_dir=tmp_path / "state")
    base = desired_state(_app(tmp_path), "sink.trades_t", settings)
    again = desired_state(_app(tmp_path), "sink.trades_t", settings)
    assert base.version == again.version
    reordered = desired_state(_app(tmp_path, order_by="[timestamp]"), "sink.trades_t", settings)
    assert reordered.config_hash != base.config_hash
    field = '  - {name: size, type: ["null", long], default: null}\n'
    widened = desired_state(_app(tmp_path, extra_field=field), "sink.trades_t", settings)
    assert widened.config_hash != base.config_hash
    assert widened.code_version == base.code_version
