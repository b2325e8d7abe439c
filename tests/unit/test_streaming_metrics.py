"""Prometheus metrics, the metrics endpoint and its port file, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tradesignals_dagster.streaming.logging import configure_logging
from tradesignals_dagster.streaming.metrics import MetricsServer, PipelineMetrics, metrics_port_file


def test_render_counts_and_histogram() -> None:
    m = PipelineMetrics("bars")
    m.observe_batch(0.003, 100, 2, 1, 5)
    m.observe_batch(0.2, 50, 0, 0, 0)
    m.consumer_lag = 42
    text = m.render()
    assert 'tradesignals_records_in_total{pipeline="bars"} 150' in text
    assert 'tradesignals_records_out_total{pipeline="bars"} 2' in text
    assert 'tradesignals_dlq_total{pipeline="bars"} 1' in text
    assert 'tradesignals_consumer_lag{pipeline="bars"} 42' in text
    assert 'tradesignals_batch_latency_seconds_bucket{pipeline="bars",le="0.005"} 1' in text
    assert 'tradesignals_batch_latency_seconds_bucket{pipeline="bars",le="0.25"} 2' in text
    assert 'tradesignals_batch_latency_seconds_bucket{pipeline="bars",le="+Inf"} 2' in text
    assert 'tradesignals_batch_latency_seconds_count{pipeline="bars"} 2' in text
    assert "# TYPE tradesignals_batch_latency_seconds histogram" in text


def test_server_binds_loopback_and_writes_its_port(tmp_path: Path) -> None:
    m = PipelineMetrics("p")
    port_file = metrics_port_file(tmp_path, "p")
    server = MetricsServer(m, 0, port_file).start()
    try:
        assert port_file == tmp_path / "pipelines" / "p" / "metrics.port"
        port = int(port_file.read_text())
        assert port == server.port and server._server.server_address[0] == "127.0.0.1"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "tradesignals_records_in_total" in body
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    finally:
        server.stop()
    assert not port_file.exists()


def test_logs_are_json_lines_with_extra_fields() -> None:
    stream = io.StringIO()
    log = configure_logging("WARNING", "bars", stream)
    try:
        log.info("hidden")
        logging.getLogger("tradesignals.streaming.bars").warning("records dead-lettered", extra={"count": 3})
        logging.getLogger("httpx").warning("kept")
        logging.getLogger("httpx").info("dropped")
    finally:
        configure_logging("WARNING", None, io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["records dead-lettered", "kept"]
    assert lines[0]["pipeline"] == "bars" and lines[0]["count"] == 3 and lines[0]["level"] == "WARNING"
    assert lines[0]["ts"].endswith("Z")
