"""`plan --env production` (RF 3, min ISR 2): refused plainly on one broker, applied on three."""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import ClusterStack
from test_pipelines_support import wait_for

from tradesignals_dagster.cli import main
from tradesignals_dagster.deploy.health import replication_reasons
from tradesignals_dagster.deploy.workloads import workload_keys
from tradesignals_dagster.kafka.admin import KafkaAdmin
from tradesignals_dagster.kafka.replication import replication_health
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _flagship_copy(tmp_path: Path) -> tuple[Path, str]:
    """The flagship registry with its topics (and tables) renamed, so tests never share them."""
    prefix = f"env{uuid.uuid4().hex[:8]}"
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", registry)
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    pattern = re.compile(r"\boption_trades(_aggs)?\b")
    for path in registry.rglob("*.yaml"):
        path.write_text(pattern.sub(lambda m: f"{prefix}_{m.group(0)}", path.read_text()))
        if pattern.fullmatch(path.stem):
            path.rename(path.with_name(f"{prefix}_{path.name}"))
    return registry, prefix


def _point_at(monkeypatch: pytest.MonkeyPatch, info: dict[str, Any]) -> None:
    monkeypatch.setenv("TRADESIGNALS_BOOTSTRAP_SERVERS", info["bootstrap_servers"])
    monkeypatch.setenv("TRADESIGNALS_SCHEMA_REGISTRY_URL", info["schema_registry_url"])
    monkeypatch.setenv("TRADESIGNALS_CLICKHOUSE_URL", info["clickhouse_url"])


def test_production_on_a_single_broker_is_refused_plainly_and_nothing_applied(
    tmp_path: Path, stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry, prefix = _flagship_copy(tmp_path)
    _point_at(monkeypatch, stack.info)
    args = ["--env", "production", "--registry", str(registry), "--state-dir", str(tmp_path / "state")]
    assert main(["plan", *args]) == 1
    out = capsys.readouterr().out
    assert f"{prefix}_option_trades: refused: replication factor 3 cannot be hosted by 1 broker(s)" in out
    assert main(["apply", *args]) == 1
    capsys.readouterr()
    live = KafkaAdmin(stack.settings.kafka_config()).describe()
    assert not [t for t in live if t.startswith(prefix)], "apply must apply nothing when refused"


def _production_applied(
    tmp_path: Path,
    cluster_stack: ClusterStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Path, str, list[str]]:
    """A flagship copy applied with ``--env production`` on the cluster: registry, prefix, CLI args."""
    registry, prefix = _flagship_copy(tmp_path)
    _point_at(monkeypatch, cluster_stack.info)
    args = ["--env", "production", "--registry", str(registry), "--state-dir", str(tmp_path / "state")]
    assert main(["apply", *args]) == 0, capsys.readouterr()
    return registry, prefix, args


def test_production_applies_cleanly_on_three_brokers(
    tmp_path: Path,
    cluster_stack: ClusterStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, prefix, args = _production_applied(tmp_path, cluster_stack, monkeypatch, capsys)

    # The apply waits until the broker it asks shows each new topic; another broker's metadata
    # can lag a moment behind (seen in CI: the last topic created missing from the next plan), so
    # plan again, briefly, until every broker the plan may ask has every topic.
    def planned() -> str | None:
        assert main(["plan", *args]) == 0
        out = capsys.readouterr().out
        return out if "No changes" in out else None

    wait_for(planned, 15, interval=1, what="a plan with no changes after the apply")
    admin = KafkaAdmin({"bootstrap.servers": cluster_stack.bootstrap_servers})
    health = replication_health(admin, {f"{prefix}_option_trades", f"{prefix}_option_trades_aggs"})
    assert {h.replication_factor for h in health.values()} == {3}
    assert {h.min_isr for h in health.values()} == {2}
    assert all(h.writable and not h.under_replicated for h in health.values())
    assert {h.partitions for h in health.values()} == {12}


def _problems(admin: KafkaAdmin, app: Any) -> dict[str, list[str]]:
    return replication_reasons(app, workload_keys(app), admin)


def _bars_degraded(admin: KafkaAdmin, app: Any) -> dict[str, list[str]] | None:
    problems = _problems(admin, app)
    return problems if problems["option_trade_volume_bars"] else None


def test_a_broker_down_shows_in_the_health_sensors_reasons_and_clears_when_back(
    tmp_path: Path,
    cluster_stack: ClusterStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry, prefix, _ = _production_applied(tmp_path, cluster_stack, monkeypatch, capsys)
    app = load_app(Settings(registry=registry, pipelines_dir=tmp_path / "pipelines", env="production"))
    admin = KafkaAdmin({"bootstrap.servers": cluster_stack.bootstrap_servers})
    assert all(not reasons for reasons in _problems(admin, app).values())

    victim = cluster_stack.cluster.node(3)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    try:
        degraded = wait_for(
            partial(_bars_degraded, admin, app),
            60,
            what="the dead broker's replicas to leave the ISR",
        )
    finally:
        cluster_stack.cluster.start()
    bars = " ".join(degraded["option_trade_volume_bars"])
    assert f"{prefix}_option_trades_aggs" in bars and "under-replicated" in bars, bars
    assert f"{prefix}_option_trades:" in bars, "the pipeline's input topic is degraded too"
    wait_for(
        lambda: all(not reasons for reasons in _problems(admin, app).values()),
        120,
        what="the restarted broker to rejoin every ISR",
    )
