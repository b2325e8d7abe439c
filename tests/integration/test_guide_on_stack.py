"""docs/guide/writing-a-pipeline.md walked end to end on the local stack: every block runs, the
``needs-stack`` ones included (stack up, apply, pipelines start/status/logs, ``dg list defs``,
the config change and restart, pipelines stop), with the reader's environment pointing at the
session's stack. Between the blocks the test checks what the guide promises: ``stack up`` found
the running stack instead of starting a second one, trades produced to ``option_trades`` come
out of the scaffolded pipeline as counts on ``trade_counts_1s``, Dagster lists the asset
``pipelines/trade_counts``, and after the restart the pipeline runs with the new grace period
(a late trade now counts) and its open windows carried over.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from test_pipelines_support import PipelineEnv, decode_all, read_topic, wait_for

from tradesignals_dagster.deploy.desired import desired_state
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.deploy.runtime import RuntimeStatus
from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import STACK_FILE, Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/guide_blocks.py
from guide_blocks import Block, copy_project, guide_env, walk

KEY, INPUT, OUTPUT = "trade_counts", "option_trades", "trade_counts_1s"
SYMBOL = "GUIDE"
# Before the restart (grace_ms 0): the trade at 900 ms is late and dropped, [0, 1000) counts 2
# and [1000, 2000) stays open. After it (grace_ms 500): the open window is restored and closed by
# the next trade; the trade at 10900 ms is within the grace, so [10000, 11000) counts 3.
BEFORE = [0, 400, 1200, 900]
AFTER = [10_000, 10_400, 11_200, 10_900, 12_600]
COUNTS_BEFORE = {0: 2}
COUNTS_AFTER = {0: 2, 1000: 1, 10_000: 3, 11_000: 1}


def trade(n: int, ts: int) -> dict[str, Any]:
    return {
        "trade_id": f"guide-{n}",
        "symbol": SYMBOL,
        "underlying": SYMBOL,
        "timestamp": ts,
        "price": 12_500,
        "size": 1,
        "oi": 0,
    }


class GuideOnStack:
    """Checks run after the guide's stack blocks, on the copy of the project the guide changes."""

    def __init__(self, workdir: Path, stack: Any) -> None:
        self.workdir = workdir
        self.stack = stack
        self.settings = Settings(
            registry=workdir / "registry",
            pipelines_dir=workdir / "pipelines",
            state_dir=stack.state_dir,
            bootstrap_servers=stack.bootstrap_servers,
            schema_registry_url=stack.schema_registry_url,
            clickhouse_url=stack.info["clickhouse_url"],
            runtime="process",
        )
        self.checked: list[str] = []
        self.produced = 0
        self.first_pid: str | None = None

    def after(self, block: Block, stdout: str) -> None:
        body = block.body
        if "pipelines start trade_counts" in body:
            self.deployed(stdout)
        elif body.startswith("dg list defs"):
            self.in_dagster(stdout)
        elif "pipelines restart trade_counts" in body:
            self.restarted()
        elif "pipelines stop trade_counts" in body:
            self.stopped()

    # -- the checks ----------------------------------------------------------------------------

    def deployed(self, stdout: str) -> None:
        recorded = json.loads((self.stack.state_dir / STACK_FILE).read_text())
        for part in ("kafka", "schema_registry", "clickhouse"):
            assert recorded[part]["pid"] == self.stack.info[part]["pid"], (
                f"`tradesignals stack up` started a second {part} instead of finding the running one"
            )
        assert recorded["bootstrap_servers"] == self.stack.bootstrap_servers
        assert f"{KEY}:" in stdout, stdout
        status = self.wait_running()
        self.first_pid = status.extra.get("child_pid") or status.runtime_id
        self.produce(BEFORE)
        self.wait_counts(COUNTS_BEFORE)
        self.checked.append("records on the output topic")

    def in_dagster(self, stdout: str) -> None:
        assert re.search(r"pipelines/trade_counts\s*│\s*pipelines\b", stdout), stdout
        assert "kafka/trade_counts_1s" in stdout, stdout
        self.checked.append("asset in Dagster")

    def restarted(self) -> None:
        assert "grace_ms: 500" in (self.workdir / "pipelines" / KEY / "config.yaml").read_text()
        status = self.wait_running()
        pid = status.extra.get("child_pid") or status.runtime_id
        assert pid != self.first_pid, "the restart left the old process running"
        self.produce(AFTER)
        self.wait_counts(COUNTS_AFTER)
        self.checked.append("restart with the new config")

    def stopped(self) -> None:
        assert not self.runtime_status().running
        self.checked.append("stopped")

    # -- helpers -------------------------------------------------------------------------------

    def env(self) -> PipelineEnv:
        app = load_application(self.settings.registry, self.settings.pipelines_dir)
        return PipelineEnv("guide", self.workdir, self.settings, app, INPUT, OUTPUT, "", KEY)

    def runtime_status(self) -> RuntimeStatus:
        return runtime_for(self.settings).status(KEY)

    def wait_running(self) -> RuntimeStatus:
        """Until the pipeline runs the version the guide's files now describe (so its config)."""
        env = self.env()
        want = desired_state(env.app, KEY, self.settings).version

        def current() -> RuntimeStatus | None:
            status = self.runtime_status()
            assert status.state != "crashed", f"{KEY} crashed: {status.detail}\n{self.logs()}"
            return status if status.running and status.version == want else None

        status: RuntimeStatus = wait_for(current, timeout=120, interval=1, what=f"{KEY} to run {want}")
        return status

    def produce(self, timestamps: list[int]) -> None:
        env = self.env()
        serde = env.serde(INPUT)
        producer = Producer(self.settings.kafka_config())
        for ts in timestamps:
            producer.produce(INPUT, serde.encode(trade(self.produced, ts)), SYMBOL.encode())
            self.produced += 1
        assert producer.flush(30) == 0, "trades not delivered"

    def counts(self) -> dict[int, int]:
        """The published windows of SYMBOL: ``{window_start: count}`` (copies must agree)."""
        env = self.env()
        rows = [r for r in decode_all(env, OUTPUT, read_topic(env, OUTPUT)) if r["symbol"] == SYMBOL]
        out: dict[int, int] = {}
        for row in rows:
            assert row["revision"] == 0 and row["window_end"] == row["window_start"] + 1000, row
            start = int(row["window_start"])
            assert out.get(start, row["count"]) == row["count"], f"two different counts for {start}: {rows}"
            out[start] = int(row["count"])
        return out

    def wait_counts(self, expected: dict[int, int]) -> None:
        seen: dict[int, int] = {}

        def done() -> bool:
            nonlocal seen
            seen = self.counts()
            return len(seen) >= len(expected)

        try:
            wait_for(done, timeout=180, interval=2, what=f"{len(expected)} window(s) on {OUTPUT}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {seen}\n{self.logs()}") from None
        assert seen == expected, f"{OUTPUT} has {seen}, expected {expected}\n{self.logs()}"

    def logs(self) -> str:
        return runtime_for(self.settings).logs(KEY, 40)


@pytest.mark.timeout(1800)  # the whole guide, dg included, on two shared cores
def test_the_guide_runs_end_to_end_on_the_local_stack(tmp_path: Path, stack: Any) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    copy_project(workdir, pyproject=True)  # `dg` needs the project's pyproject.toml
    (tmp_path / "dagster_home").mkdir()
    env = guide_env(workdir) | {
        "TRADESIGNALS_STATE_DIR": str(stack.state_dir),
        "TRADESIGNALS_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "TRADESIGNALS_SCHEMA_REGISTRY_URL": stack.schema_registry_url,
        "TRADESIGNALS_CLICKHOUSE_URL": stack.info["clickhouse_url"],
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "COLUMNS": "200",  # dg's table: whole asset keys
    }
    checks = GuideOnStack(workdir, stack)
    try:
        walked = walk(workdir, env, with_stack=True, after=checks.after)
    finally:  # the guide's last block stops it; when a block before failed, this does
        tradesignals = str(Path(sys.executable).parent / "tradesignals")
        stop = [tradesignals, "pipelines", "stop", KEY]
        subprocess.run(stop, cwd=workdir, env=env, capture_output=True, timeout=120, check=False)
    assert not checks.runtime_status().running, f"{KEY} still runs after `pipelines stop`"
    assert walked.parsed_only == 0 and walked.ran >= 13 and walked.compared >= 8
    assert checks.checked == [
        "records on the output topic",
        "asset in Dagster",
        "restart with the new config",
        "stopped",
    ]
