"""`tradesignals dev` (what `make dev` runs) on a fresh state dir: the Dagster UI's GraphQL API
lists every registry asset materialized, and volume bars are flowing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tradesignals_dagster.kafka.admin import KafkaAdmin

ROOT = Path(__file__).parent.parent.parent
QUERY = """{ assetsOrError { ... on AssetConnection { nodes {
  key { path } assetMaterializations(limit: 1) { timestamp } } } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(port: int) -> dict[str, bool]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        nodes = json.loads(resp.read())["data"]["assetsOrError"]["nodes"]
    return {"/".join(n["key"]["path"]): bool(n["assetMaterializations"]) for n in nodes}


def test_dev_brings_up_ui_with_every_asset_materialized_and_bars_flowing(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = {**os.environ, "TRADESIGNALS_STATE_DIR": str(state)}
    for var in ("TRADESIGNALS_BOOTSTRAP_SERVERS", "TRADESIGNALS_SCHEMA_REGISTRY_URL", "DAGSTER_HOME"):
        env.pop(var, None)
    log = (tmp_path / "dev.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "tradesignals"), "dev", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, assets = time.monotonic() + 240, {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            try:
                assets = graphql(port)
                if assets:
                    break
            except OSError:
                pass
            time.sleep(2)
        assert assets, (tmp_path / "dev.log").read_text()[-3000:]
        # the streaming deployment is materialized; feeds are observed, datasets and models come
        # from their schedules once data has accumulated
        scheduled = ("feeds/", "datasets/", "models/")
        materializable = {k: v for k, v in assets.items() if not k.startswith(scheduled)}
        assert {
            "schemas/option_trades-value",
            "schemas/option_trades_aggs-value",
            "kafka/option_trades",
            "kafka/option_trades_aggs",
            "pipelines/option_trades_ingest",
            "pipelines/option_trade_volume_bars",
            "pipelines/option_trade_time_bars",
            "sinks/option_trades_aggs_sink",
            "clickhouse/option_trades_aggs_table",
        } <= set(materializable), sorted(materializable)
        assert {"datasets/option_volume_bars", "models/volume_bar_direction"} <= set(assets)
        assert all(materializable.values()), materializable

        stack = json.loads((state / "stack.json").read_text())
        admin = KafkaAdmin({"bootstrap.servers": stack["bootstrap_servers"]})
        partitions = admin.describe({"option_trades_aggs"})["option_trades_aggs"].partitions
        first = sum(admin.end_offsets("option_trades_aggs", partitions).values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = sum(admin.end_offsets("option_trades_aggs", partitions).values())
            if now > first:
                break
            time.sleep(1)
        assert now > first, "no volume bars were written while dev mode ran"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert not (state / "stack.json").exists(), "dev mode left the stack running"
