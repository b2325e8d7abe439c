"""A broker that is down is reported in one line; librdkafka's own lines go to a debug logger.

Without a ``logger`` in the client configuration librdkafka writes every failed connection
attempt to file descriptor 2 (about 200 lines before ``tradesignals plan`` said Kafka was down).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals_dagster.kafka.admin import KafkaAdmin, KafkaAdminError, KafkaUnavailableError
from tradesignals_dagster.kafka.client_logs import LOGGER_NAME

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A port nothing listens on: bound to 127.0.0.1 by the kernel, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_plan_with_the_broker_down_prints_one_clear_line(tmp_path: Path) -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    env["TRADESIGNALS_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
    env["TRADESIGNALS_REQUEST_TIMEOUT_S"] = "3"
    argv = [sys.executable, "-m", "tradesignals_dagster.cli", "plan"]
    argv += ["--registry", str(ROOT / "registry"), "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) <= 3, f"{len(lines)} lines on stderr:\n{done.stderr[:2000]}"
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in done.stderr
    assert "rdkafka" not in done.stderr and "%3|" not in done.stderr


def test_librdkafka_lines_reach_the_debug_logger_not_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    port = closed_port()
    admin = KafkaAdmin({"bootstrap.servers": f"127.0.0.1:{port}"}, timeout_s=2)
    with pytest.raises(KafkaUnavailableError, match=f"cannot reach Kafka at 127.0.0.1:{port}"):
        admin.describe()
    with pytest.raises(KafkaAdminError, match="committed offsets of group g"):
        admin.group_lag("g", "t", 1)  # the consumer it creates is quiet too
    captured = capfd.readouterr()
    assert "rdkafka" not in captured.err and "Connection refused" not in captured.err
    records = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert records and all(r.levelno == logging.DEBUG for r in records)
    assert any("Connect to" in r.getMessage() for r in records)
