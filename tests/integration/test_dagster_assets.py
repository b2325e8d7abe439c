"""Materializing the Dagster assets changes the live cluster and registry; checks see drift."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.defs.keys import schema_key, topic_key
from tradesignals_dagster.settings import Settings


def write_registry(root: Path, prefix: str, retention_ms: int = 3_600_000) -> Path:
    app = {
        "StreamingApplication": {
            "id": prefix,
            "Topics": {
                f"{prefix}_quotes": {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "min_insync_replicas": 1,
                    "retention_ms": retention_ms,
                    "value_schema": {
                        "name": "Quote",
                        "doc": "A quote",
                        "fields": [
                            {"name": "symbol", "type": "string", "doc": "Ticker"},
                            {
                                "name": "bid",
                                "type": "bytes",
                                "logical_type": "decimal",
                                "precision": 10,
                                "scale": 2,
                            },
                        ],
                    },
                },
            },
        }
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipelines.yaml").write_text(yaml.safe_dump(app))
    return root


@pytest.fixture
def env(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    prefix = f"dg{uuid.uuid4().hex[:8]}"
    reg = write_registry(tmp_path / "registry", prefix)
    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", stack.bootstrap_servers)
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", stack.schema_registry_url)
    settings = Settings(
        registry=reg,  # no pipelines/ beside it: a registry kept apart from pipeline code
        state_dir=tmp_path / "state",
        bootstrap_servers=stack.bootstrap_servers,
        schema_registry_url=stack.schema_registry_url,
    )
    return settings, prefix


def _materialize(defs: dg.Definitions, keys: list[dg.AssetKey]) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(asset_selection=keys, raise_on_error=False)


def test_materializing_schema_and_topic_assets_creates_them(stack: Any, env: tuple[Settings, str]) -> None:
    settings, prefix = env
    topic, subject = f"{prefix}_quotes", f"{prefix}_quotes-value"
    defs = build_definitions(settings)

    result = _materialize(defs, [schema_key(subject), topic_key(topic)])

    assert result.success
    live = ControlPlane.from_settings(settings).admin.describe({topic})[topic]
    assert live.partitions == 3 and live.configs["retention.ms"] == "3600000"
    sr = SchemaRegistryClient({"url": stack.schema_registry_url})
    registered = sr.get_latest_version(subject)
    schema_meta = result.asset_materializations_for_node(f"schemas__{subject.replace('-', '_')}")
    assert schema_meta, [e.step_key for e in result.all_events]
    md = schema_meta[0].metadata
    assert md["schema_id"].value == registered.schema_id and md["version"].value == 1
    column_schema = md["dagster/column_schema"].value
    assert isinstance(column_schema, dg.TableSchema)
    columns = [c.name for c in column_schema.columns]
    assert columns == ["symbol", "bid"]
    topic_meta = result.asset_materializations_for_node(f"kafka__{topic}")[0].metadata
    assert topic_meta["partitions"].value == 3


def test_topic_check_reports_drift_made_outside_the_registry(stack: Any, env: tuple[Settings, str]) -> None:
    settings, prefix = env
    topic = f"{prefix}_quotes"
    defs = build_definitions(settings)
    assert _materialize(defs, [schema_key(f"{topic}-value"), topic_key(topic)]).success

    admin = ControlPlane.from_settings(settings).admin
    admin.set_configs(topic, {"retention.ms": "1000"})

    check = dg.AssetCheckKey(topic_key(topic), "matches_registry")
    drift_job = dg.define_asset_job("drift", selection=dg.AssetSelection.checks(check))
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[drift_job]))
    result = merged.resolve_job_def("drift").execute_in_process(raise_on_error=False)
    evals = result.get_asset_check_evaluations()
    assert len(evals) == 1 and evals[0].passed is False
    assert "retention.ms 1000 -> 3600000" in str(evals[0].metadata["drift"].value)


def test_incompatible_schema_fails_the_asset_naming_the_field(
    stack: Any, env: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, prefix = env
    subject = f"{prefix}_quotes-value"
    assert _materialize(build_definitions(settings), [schema_key(subject)]).success
    reg = settings.registry / "pipelines.yaml"
    data = yaml.safe_load(reg.read_text())
    data["StreamingApplication"]["Topics"][f"{prefix}_quotes"]["value_schema"]["fields"].append(
        {"name": "ask_size", "type": "int"}
    )
    reg.write_text(yaml.safe_dump(data))

    result = _materialize(build_definitions(settings), [schema_key(subject)])

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "ask_size" in str(failure.event_specific_data.error)  # type: ignore[union-attr]
    assert SchemaRegistryClient({"url": stack.schema_registry_url}).get_versions(subject) == [1]
