"""A pipeline that runs but makes no progress while its input waits is reported as stalled
(`pipelines status`, the health check) and restarted by the health sensor."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from test_dagster_sensors import run_requested, tick
from test_pipelines_support import caught_up, wait_for, write_env

from tradesignals_dagster.cli import main as cli_main
from tradesignals_dagster.defs.checks import build_checks
from tradesignals_dagster.defs.keys import pipeline_key
from tradesignals_dagster.defs.resources import TradesignalsResource
from tradesignals_dagster.defs.sensors import pipeline_health
from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.registry.application import load_app

# The flagship bars transform, made to hang (as a deadlocked transform or a stuck client would)
# while the file `hang` exists next to it.
STUCK_APP = """
import time
from pathlib import Path
from tradesignals_dagster.streaming.entry import main
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig

FLAG = Path(__file__).with_name("hang")


class Hanging(VolumeBarAggregator):
    def process(self, records, positions=None):
        while FLAG.exists():
            time.sleep(0.1)
        return super().process(records, positions)


def build(ctx):
    return Hanging(VolumeBarsConfig(**ctx.config), price_scale=ctx.decimal_scale("price"))


if __name__ == "__main__":
    main(build)
"""
STALL_AFTER_S = 3


def test_a_stalled_pipeline_is_reported_and_restarted(
    tmp_path: Path, stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = write_env(tmp_path / "env", stack, bars_config={"bar_volume": 100})
    folder = env.settings.pipelines_dir / env.bars_pipeline
    (folder / "app.py").write_text(STUCK_APP)
    for name, value in (
        ("BOOTSTRAP_SERVERS", stack.bootstrap_servers),
        ("SCHEMA_REGISTRY_URL", stack.schema_registry_url),
        ("STALL_AFTER_S", str(STALL_AFTER_S)),
    ):
        monkeypatch.setenv(f"TRADESIGNALS_{name}", value)
    settings = env.settings.model_copy(update={"stall_after_s": STALL_AFTER_S})
    resource = TradesignalsResource(
        registry=str(settings.registry),
        pipelines_dir=str(settings.pipelines_dir),
        state_dir=str(settings.state_dir),
    )
    runtime = runtime_for(settings)
    group = env.app.pipelines[env.bars_pipeline].consumer_group()
    try:
        runtime.deploy(desired_state(env.app, env.bars_pipeline, settings))
        assert env.runner(env.ingest).run().records_out == 1000
        wait_for(lambda: caught_up(env, group, env.trades), 60, what="the first trades to be processed")
        assert _status(env.settings, capsys)["state"] == "running"

        (folder / "hang").touch()
        assert env.runner(env.ingest).run().records_out == 1000  # the same trades again: input waits
        time.sleep(STALL_AFTER_S + 2)
        row = _status(env.settings, capsys)
        assert row["state"] == "stalled", row
        assert "input message(s) wait" in row["detail"]
        check = _health_check(settings, env.bars_pipeline)
        assert not check.passed and check.metadata["state"].value == "stalled"

        pid = runtime.status(env.bars_pipeline).extra["child_pid"]
        result = tick(pipeline_health, resource, None)
        requests = result.run_requests or []
        assert len(requests) == 1 and requests[0].tags["tradesignals/force"] == "true"
        assert "stalled" in requests[0].tags["tradesignals/reason"]
        (folder / "hang").unlink()  # the restarted process is healthy again
        run_requested(settings, requests[0])
        assert runtime.status(env.bars_pipeline).extra["child_pid"] != pid
        wait_for(lambda: caught_up(env, group, env.trades), 60, what="the restarted pipeline to catch up")
    finally:
        (folder / "hang").unlink(missing_ok=True)
        runtime.stop(env.bars_pipeline, timeout=20)


def _status(settings: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    args = ["--registry", str(settings.registry), "--pipelines", str(settings.pipelines_dir)]
    code = cli_main(["pipelines", "status", "--json", *args, "--state-dir", str(settings.state_dir)])
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["state"] != "missing")
    assert code == (1 if row["state"] == "stalled" else 0)
    return dict(row)


def _health_check(settings: Any, key: str) -> dg.AssetCheckResult:
    resource = TradesignalsResource(
        registry=str(settings.registry),
        pipelines_dir=str(settings.pipelines_dir),
        state_dir=str(settings.state_dir),
    )
    check = next(
        c
        for c in build_checks(load_app(settings))
        if pipeline_key(key) in {k.asset_key for k in c.check_keys}
    )
    result = check(tradesignals=resource)
    assert isinstance(result, dg.AssetCheckResult)
    return result
