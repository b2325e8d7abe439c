"""The health sensor's throughput figures come from a pipeline's real metrics endpoint."""

from __future__ import annotations

from pathlib import Path

from tradesignals_dagster.control.inspect import pipeline_metrics
from tradesignals_dagster.streaming.metrics import MetricsServer, PipelineMetrics, metrics_port_file


def test_pipeline_metrics_reads_counters_from_the_running_endpoint(tmp_path: Path) -> None:
    metrics = PipelineMetrics("bars")
    metrics.observe_batch(0.004, records_in=1200, records_out=60, dlq=3, snapshots=7)
    metrics.observe_batch(0.006, records_in=800, records_out=40, dlq=0, snapshots=2)
    server = MetricsServer(metrics, port=0, port_file=metrics_port_file(tmp_path, "bars")).start()
    try:
        scraped = pipeline_metrics(tmp_path, "bars")
    finally:
        server.stop()
    assert scraped["records_in_total"] == 2000
    assert scraped["records_out_total"] == 100
    assert scraped["dlq_total"] == 3
    assert scraped["batches_total"] == 2


def test_pipeline_metrics_is_empty_when_nothing_answers(tmp_path: Path) -> None:
    assert pipeline_metrics(tmp_path, "never-started") == {}
    port_file = metrics_port_file(tmp_path, "gone")
    port_file.parent.mkdir(parents=True)
    port_file.write_text("1")  # nothing listens on port 1
    assert pipeline_metrics(tmp_path, "gone", timeout_s=0.5) == {}
