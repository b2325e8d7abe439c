"""The process entry point of every ``pipelines/<id>/app.py``: settings, registry, signals, exit code.

Kept apart from :mod:`.runner` so the loop stays importable and testable without touching the
process (signals, ``sys.exit``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings, load_settings
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.gc_policy import tune_for_streaming
from tradesignals_dagster.streaming.logging import configure_logging
from tradesignals_dagster.streaming.processors.base import ProcessorFactory
from tradesignals_dagster.streaming.runner import PipelineRunner


def _key_from_argv() -> str | None:
    """The pipeline id from ``pipelines/<id>/app.py`` in ``sys.argv[0]``."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "app.py":
        return script.resolve().parent.name
    return None


def install_stop_signals(request_stop: Callable[[str], None]) -> None:
    """Make SIGTERM and SIGINT call ``request_stop(<signal name>)``, on a thread of its own.

    A signal handler runs on the main thread between two bytecodes, possibly while that thread
    holds the stop event's internal lock (inside ``Event.wait``) or a logging stream's buffer:
    setting the event or logging right there can deadlock. The handler only starts a thread.
    """

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=request_stop, args=(name,), name=f"stop-{name}", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def load_pipeline(key: str) -> tuple[StreamingApplication, Settings]:
    """The application and settings a pipeline process runs with, read from its environment
    through the same loading path as the CLI and Dagster (so all agree on its version)."""
    from tradesignals_dagster.registry.application import load_app

    settings = load_settings()
    app = load_app(settings)
    if key not in app.pipelines:
        raise PipelineConfigError(f"no pipeline {key!r} in the registry at {settings.registry}")
    return app, settings


def run_main(
    build: ProcessorFactory | None = None,
    *,
    pipeline_key: str | None = None,
    overrides: dict[str, Any] | None = None,
    install_signals: bool = True,
    tune_gc: bool = False,
) -> int:
    """Run the pipeline the environment names; returns the process exit code.

    The pipeline is ``pipeline_key``, else ``$TRADESIGNALS_PIPELINE``, else the directory of
    the running ``app.py``. Settings are read now (``TRADESIGNALS_*``, see
    :func:`~tradesignals_dagster.settings.load_settings`); ``overrides`` are layered on the
    pipeline's config (what-if runs, see :func:`~.config.parse_overrides`). ``tune_gc``
    (process entry points) applies :func:`~.gc_policy.tune_for_streaming` once the runner is built.
    """
    key = pipeline_key or os.environ.get("TRADESIGNALS_PIPELINE") or _key_from_argv()
    log = configure_logging("INFO", key)
    stop = threading.Event()  # set by a signal during start-up too: the run then ends at once, cleanly
    runner: PipelineRunner | None = None
    if install_signals:
        install_stop_signals(lambda reason: runner.request_stop(reason) if runner else stop.set())
    try:
        if not key:
            raise PipelineConfigError(
                "which pipeline? set TRADESIGNALS_PIPELINE or run pipelines/<id>/app.py"
            )
        app, settings = load_pipeline(key)
        log = configure_logging(app.pipelines[key].log_level, key)
        runner = PipelineRunner(app, key, settings, build, overrides=overrides, stop=stop)
        if tune_gc:
            tune_for_streaming()
        runner.run()
        return 0
    except TradesignalsError as exc:
        log.error(str(exc), extra={"error_type": type(exc).__name__})
        return exc.exit_code
    except Exception as exc:
        log.exception("pipeline crashed", extra={"error_type": type(exc).__name__})
        return 1


def main(build: ProcessorFactory | None = None, *, pipeline_key: str | None = None) -> NoReturn:
    """Entry point of ``pipelines/<id>/app.py``: run until SIGTERM/SIGINT, then exit.

    Exit codes: 0 after a graceful stop or a drained finite input; 2 for configuration
    problems (registry, schemas or topics not applied); 1 for runtime failures.
    """
    sys.exit(run_main(build, pipeline_key=pipeline_key, tune_gc=True))
