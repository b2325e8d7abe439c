"""What the runner checks before it connects, and how ``main`` reports failures (no Kafka)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.settings import Settings
from tradesignals_dagster.streaming import logging as ts_logging
from tradesignals_dagster.streaming.config import load_factory
from tradesignals_dagster.streaming.entry import run_main
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.runner import PipelineRunner

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project_copy(tmp_path: Path) -> tuple[Path, Path]:
    registry = tmp_path / "registry"
    pipelines = tmp_path / "pipelines"
    shutil.copytree(PROJECT / "registry", registry)
    shutil.copytree(PROJECT / "pipelines", pipelines, ignore=shutil.ignore_patterns("__pycache__"))
    return registry, pipelines


def test_the_flagship_bars_pipeline_builds_its_aggregator() -> None:
    app = load_application(PROJECT / "registry", PROJECT / "pipelines")
    settings = Settings(registry=PROJECT / "registry", pipelines_dir=PROJECT / "pipelines")
    runner = PipelineRunner(app, "option_trade_volume_bars", settings, overrides={"runtime.batch_size": 7})
    assert isinstance(runner.processor, VolumeBarAggregator)
    assert runner.processor.config.bar_volume == 500 and runner.options.batch_size == 7
    assert runner.stateful and runner.dlq_topic == "option_trades.dlq"
    assert runner.state_topic == "option_trade_volume_bars.state" and runner.key_field == "symbol"
    ingest = PipelineRunner(app, "option_trades_ingest", settings)
    assert not ingest.stateful and not ingest.is_kafka


def test_bad_settings_are_config_errors(project_copy: tuple[Path, Path]) -> None:
    registry, pipelines = project_copy
    app = load_application(registry, pipelines)
    settings = Settings(registry=registry, pipelines_dir=pipelines)
    with pytest.raises(PipelineConfigError, match="no pipeline 'nope'"):
        PipelineRunner(app, "nope", settings)
    with pytest.raises(PipelineConfigError, match="bar_volume"):
        PipelineRunner(app, "option_trade_volume_bars", settings, overrides={"bar_volume": 0})
    with pytest.raises(PipelineConfigError, match="batch_size"):
        PipelineRunner(app, "option_trade_volume_bars", settings, overrides={"runtime.batch_size": -1})
    with pytest.raises(PipelineConfigError, match="do not fit pipeline option_trade_volume_bars's processor"):
        replay_file(
            app, "option_trade_volume_bars", "in.csv", "out.csv", {"bogus": 1}, pipelines_dir=pipelines
        )


def test_app_py_must_define_build(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "app.py").write_text("x = 1\n")
    with pytest.raises(PipelineConfigError, match=r"must define build\(ctx\)"):
        load_factory(tmp_path, "p")
    (tmp_path / "p" / "app.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PipelineConfigError, match="failed to import: RuntimeError: boom"):
        load_factory(tmp_path, "p")
    (tmp_path / "q").mkdir()
    assert load_factory(tmp_path, "q").__module__.endswith("passthrough")


def _run_main(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, list[dict]]:
    for key in ("TRADESIGNALS_PIPELINE", "TRADESIGNALS_REGISTRY", "TRADESIGNALS_PIPELINES_DIR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = io.StringIO()
    real = ts_logging.configure_logging
    monkeypatch.setattr(
        "tradesignals_dagster.streaming.entry.configure_logging",
        lambda level, pipeline=None, _s=None: real(level, pipeline, stream),
    )
    try:
        code = run_main(install_signals=False)
    finally:
        real("WARNING", None, io.StringIO())
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_main_reports_errors_as_json_with_exit_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, lines = _run_main(monkeypatch)
    assert code == 2 and "which pipeline?" in lines[-1]["msg"] and lines[-1]["level"] == "ERROR"
    code, lines = _run_main(
        monkeypatch, TRADESIGNALS_PIPELINE="x", TRADESIGNALS_REGISTRY=str(tmp_path / "missing")
    )
    assert code == 2 and lines[-1]["error_type"] == "RegistryError"
    code, lines = _run_main(
        monkeypatch,
        TRADESIGNALS_PIPELINE="nope",
        TRADESIGNALS_REGISTRY=str(PROJECT / "registry"),
        TRADESIGNALS_PIPELINES_DIR=str(PROJECT / "pipelines"),
    )
    assert code == 2 and "no pipeline 'nope'" in lines[-1]["msg"]


SIGNAL_WHILE_HOLDING_THE_EVENT_LOCK = """
import signal, sys, threading
from tradesignals_dagster.streaming.entry import install_stop_signals
stop = threading.Event()
install_stop_signals(lambda reason: (print(reason, flush=True), stop.set()))
with stop._cond:  # where Event.wait holds it: the handler runs inside this window
    signal.raise_signal(signal.SIGTERM)
sys.exit(0 if stop.wait(10) else 3)
"""


def test_stop_signal_arriving_inside_event_wait_does_not_deadlock() -> None:
    """SIGTERM landing while the main thread holds the stop event's lock still stops the run."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_HOLDING_THE_EVENT_LOCK],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PROJECT,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "SIGTERM"), done.stderr
