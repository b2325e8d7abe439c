"""Pipeline metrics in the Prometheus text format, served on 127.0.0.1 by the stdlib.

Exposed series (each labelled ``pipeline="<id>"``):

* ``tradesignals_records_in_total`` (counter): records read from the input.
* ``tradesignals_records_out_total`` (counter): records produced to the output topic.
* ``tradesignals_dlq_total`` (counter): records sent to the dead-letter topic.
* ``tradesignals_state_snapshots_total`` (counter): processor snapshots written.
* ``tradesignals_batches_total`` (counter): batches committed.
* ``tradesignals_consumer_lag`` (gauge): input messages not yet consumed (kafka inputs) or
  buffered (feeds).
* ``tradesignals_batch_latency_seconds`` (histogram): poll-to-commit time of a batch.
* ``tradesignals_last_commit_timestamp_seconds`` (gauge): wall time of the last commit.
* ``tradesignals_seconds_since_last_batch`` (gauge): with input waiting, a growing value is a
  stall (see :mod:`tradesignals_dagster.deploy.health`).

The server binds ``127.0.0.1`` only; the port comes from ``TRADESIGNALS_METRICS_PORT`` (0, the
default, picks a free one) and is written to ``<state_dir>/pipelines/<id>/metrics.port``.
"""

from __future__ import annotations

import bisect
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PORT_FILE = "metrics.port"


class PipelineMetrics:
    """Counters, gauges and the batch-latency histogram of one pipeline (thread-safe reads)."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.records_in = 0
        self.records_out = 0
        self.dlq = 0
        self.state_snapshots = 0
        self.batches = 0
        self.consumer_lag = 0
        self.last_commit = 0.0
        self.reconnects = 0
        self._last_batch = time.monotonic()  # a pipeline that never got a batch counts from its start
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._lock = threading.Lock()

    def observe_batch(
        self, seconds: float, records_in: int, records_out: int, dlq: int, snapshots: int
    ) -> None:
        """Account one committed batch."""
        with self._lock:
            self.records_in += records_in
            self.records_out += records_out
            self.dlq += dlq
            self.state_snapshots += snapshots
            self.batches += 1
            self.last_commit = time.time()
            self._last_batch = time.monotonic()
            self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def snapshot(self) -> dict[str, Any]:
        """The current values, for logs and tests."""
        with self._lock:
            return {
                "records_in": self.records_in,
                "records_out": self.records_out,
                "dlq": self.dlq,
                "state_snapshots": self.state_snapshots,
                "batches": self.batches,
                "consumer_lag": self.consumer_lag,
                "reconnects": self.reconnects,
                "seconds_since_last_batch": round(time.monotonic() - self._last_batch, 3),
                "batch_latency_avg_s": (self._latency_sum / self._latency_count)
                if self._latency_count
                else 0.0,
            }

    def render(self) -> str:
        """All series in the Prometheus text exposition format (version 0.0.4)."""
        label = f'pipeline="{_escape(self.pipeline)}"'
        with self._lock:
            lines: list[str] = []
            for name, kind, help_text, value in (
                ("tradesignals_records_in_total", "counter", "Records read from the input.", self.records_in),
                (
                    "tradesignals_records_out_total",
                    "counter",
                    "Records produced to the output.",
                    self.records_out,
                ),
                ("tradesignals_dlq_total", "counter", "Records sent to the dead-letter topic.", self.dlq),
                (
                    "tradesignals_state_snapshots_total",
                    "counter",
                    "Processor state snapshots written.",
                    self.state_snapshots,
                ),
                ("tradesignals_batches_total", "counter", "Batches committed.", self.batches),
                (
                    "tradesignals_input_reconnects_total",
                    "counter",
                    "Input reconnects (feed, fenced consumer).",
                    self.reconnects,
                ),
                (
                    "tradesignals_consumer_lag",
                    "gauge",
                    "Input messages not yet processed.",
                    self.consumer_lag,
                ),
                (
                    "tradesignals_seconds_since_last_batch",
                    "gauge",
                    "Seconds since the last batch was processed (with input waiting: a stall).",
                    round(time.monotonic() - self._last_batch, 3),
                ),
                (
                    "tradesignals_last_commit_timestamp_seconds",
                    "gauge",
                    "Unix time of the last committed batch.",
                    self.last_commit,
                ),
            ):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{{{label}}} {value}"]
            name = "tradesignals_batch_latency_seconds"
            lines += [f"# HELP {name} Time from poll to commit of a batch.", f"# TYPE {name} histogram"]
            cumulative = 0
            for bound, count in zip(LATENCY_BUCKETS, self._bucket_counts, strict=False):
                cumulative += count
                lines.append(f'{name}_bucket{{{label},le="{bound}"}} {cumulative}')
            cumulative += self._bucket_counts[-1]
            lines.append(f'{name}_bucket{{{label},le="+Inf"}} {cumulative}')
            lines.append(f"{name}_sum{{{label}}} {self._latency_sum}")
            lines.append(f"{name}_count{{{label}}} {self._latency_count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsServer:
    """Serves ``/metrics`` (and ``/healthz``) for one :class:`PipelineMetrics` on 127.0.0.1."""

    def __init__(self, metrics: PipelineMetrics, port: int = 0, port_file: Path | None = None) -> None:
        self.metrics = metrics
        self.port_file = port_file
        handler = _handler_for(metrics)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self.port: int = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        """Start serving in a daemon thread and record the bound port in ``port_file``."""
        self._thread.start()
        if self.port_file is not None:
            self.port_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.port_file.with_suffix(".tmp")
            tmp.write_text(f"{self.port}\n")
            tmp.replace(self.port_file)
        return self

    def stop(self) -> None:
        """Stop serving and remove the port file."""
        self._server.shutdown()
        self._server.server_close()
        if self.port_file is not None:
            try:
                if self.port_file.read_text().strip() == str(self.port):
                    self.port_file.unlink()
            except OSError:
                pass


def _handler_for(metrics: PipelineMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] in ("/metrics", "/"):
                body = metrics.render().encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/healthz":
                body, ctype = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not worth a log line."""

    return Handler


def metrics_port_file(state_dir: Path, pipeline: str) -> Path:
    """Where a running pipeline records its metrics port."""
    return state_dir / "pipelines" / pipeline / PORT_FILE
