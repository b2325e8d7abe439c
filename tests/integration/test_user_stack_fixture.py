"""The ``tradesignals_stack`` pytest fixture, used the way a user's own project uses it: a
separate pytest run in a copy of the project, whose test applies the registry, round-trips a
message through the stack's broker and schema registry, and after which the stack is down."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = 'pytest_plugins = ["tradesignals_dagster.pytest_plugin"]\n'
USER_TEST = """
import json, uuid
from pathlib import Path
from confluent_kafka import Consumer, Producer
from tradesignals_dagster.kafka.admin import KafkaAdmin


def test_my_registry_on_the_local_stack(tradesignals_stack):
    stack = tradesignals_stack
    assert Path(stack.settings.registry).resolve() == Path("registry").resolve()
    stack.apply()
    assert stack.apply().applied == [], "apply is idempotent"
    live = KafkaAdmin(stack.settings.kafka_config()).describe()
    assert "option_trades" in live and "option_trades_aggs" in live
    conf = stack.settings.kafka_config()
    producer = Producer(conf)
    producer.produce("option_trades", value=b"hello", key=b"k")
    assert producer.flush(30) == 0
    consumer = Consumer({**conf, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe(["option_trades"])
    got = None
    for _ in range(60):
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            got = msg.value()
            break
    consumer.close()
    assert got == b"hello"
    port = int(stack.bootstrap_servers.rsplit(":", 1)[1])
    Path("stack.json").write_text(json.dumps({"port": port, "state_dir": str(stack.settings.state_dir)}))
"""


@pytest.mark.timeout(900)  # a whole second stack (broker JVM, registry, endpoint, S3) starts
def test_a_users_pytest_run_gets_the_stack_and_leaves_nothing_running(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "registry", tmp_path / "registry")
    shutil.copytree(ROOT / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text(CONFTEST)
    (tmp_path / "tests" / "test_mine.py").write_text(USER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADESIGNALS_", "PYTEST_"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "1 passed" in run.stdout
    info = json.loads((tmp_path / "stack.json").read_text())
    assert not Path(info["state_dir"], "stack.json").exists(), "the stack's record must be gone"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", info["port"])) != 0, "the broker must be stopped after the session"
