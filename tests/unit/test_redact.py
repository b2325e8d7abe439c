"""Credentials in URLs never reach a message, a log line or the terminal.

``redact_url``/``redact_text`` are checked directly; then the schema registry client and the
``tradesignals`` CLI are pointed at ``http://alice:<password>@127.0.0.1:<closed port>`` and
every message, log record and byte of output is searched for the password.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals_dagster.kafka.schema_registry import SchemaRegistry, SchemaRegistryClientError
from tradesignals_dagster.redact import redact_text, redact_url

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-Sup3rSecret"


def closed_port() -> int:
    """A port nothing listens on: bound to 127.0.0.1 by the kernel, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://alice:s3cret@host:8081/x", "http://alice:***@host:8081/x"),
        ("https://alice:p%40ss@host", "https://alice:***@host"),
        ("http://only-a-token@host", "http://***@host"),
        ("http://a:p@h1:1,https://b:q@h2:2/", "http://a:***@h1:1,https://b:***@h2:2/"),
        ("wss://feed.example/x?symbol=A&token=abc#top", "wss://feed.example/x?symbol=A&token=***#top"),
        ("wss://feed.example/x?API_KEY=abc", "wss://feed.example/x?API_KEY=***"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://host/x?symbol=A", "http://host/x?symbol=A"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_text_finds_urls_inside_messages() -> None:
    text = "GET 'http://alice:pa@ss@host:1/subjects?x=1&api_key=zz' failed; retry https://u:p@other"
    redacted = redact_text(text)
    assert (
        redacted == "GET 'http://alice:***@host:1/subjects?x=1&api_key=***' failed; retry https://u:***@other"
    )
    for secret in ("pa@ss", "zz", ":p@"):
        assert secret not in redacted


def test_the_registry_client_never_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"
    registry = SchemaRegistry({"url": url}, timeout_s=2)
    assert PASSWORD not in registry.url and "alice:***@" in registry.url
    with pytest.raises(SchemaRegistryClientError) as info:
        registry.versions("option_trades-value")
    message = str(info.value)
    assert "cannot reach the schema registry at http://alice:***@127.0.0.1:" in message
    assert PASSWORD not in message
    assert info.value.__cause__ is None  # a traceback cannot show the client's own exception
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


def test_a_misconfigured_registry_client_is_a_clear_error_without_the_password() -> None:
    url = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"
    with pytest.raises(SchemaRegistryClientError) as info:
        SchemaRegistry({"url": url, "basic.auth.user.info": "bob:other"})
    assert "cannot be configured" in str(info.value) and PASSWORD not in str(info.value)


@pytest.mark.parametrize("auth_env", [False, True])
def test_the_cli_prints_the_registry_url_redacted(tmp_path: Path, auth_env: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESIGNALS_")}
    env["TRADESIGNALS_SCHEMA_REGISTRY_URL"] = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"
    env["TRADESIGNALS_REQUEST_TIMEOUT_S"] = "2"
    if auth_env:  # both kinds of credentials: the client refuses the configuration
        env["TRADESIGNALS_SCHEMA_REGISTRY_BASIC_AUTH"] = "bob:other"
    argv = [sys.executable, "-m", "tradesignals_dagster.cli", "plan", "--subject", "option_trades-value"]
    argv += ["--registry", str(ROOT / "registry"), "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "alice:***@127.0.0.1" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_a_websocket_feed_logs_its_url_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import threading
    import time

    from flagship_avro import OPTION_TRADES

    from tradesignals_dagster.registry.models import (
        StreamingPipeline,
        StreamingPipelineInput,
        StreamingPipelineOutput,
    )
    from tradesignals_dagster.streaming.inputs import InputContext
    from tradesignals_dagster.streaming.websocket import WebsocketInput

    caplog.set_level(logging.DEBUG)
    url = f"ws://alice:{PASSWORD}@127.0.0.1:{closed_port()}/feed?token={PASSWORD}x"
    spec = StreamingPipelineInput(
        type="websocket", url=url, additional_metadata={"backoff_initial_s": "0.05", "backoff_max_s": "0.1"}
    )
    pipe = StreamingPipeline(key="ws", input=spec, output=StreamingPipelineOutput(topic_id="t"))
    ctx = InputContext(pipeline=pipe, schema=OPTION_TRADES, base_dir=Path("."), stop=threading.Event())
    feed = WebsocketInput(spec, ctx)
    assert PASSWORD not in feed.describe() and "alice:***@" in feed.describe()
    feed.open()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "reconnecting" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
    finally:
        feed.close()
    lost = [r for r in caplog.records if "reconnecting" in r.getMessage()]
    assert lost, "the feed never reported the refused connection"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and PASSWORD not in str(record.__dict__)
