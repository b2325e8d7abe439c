"""Structured logs: one JSON object per line on stderr, at the pipeline's ``log_level``.

Log lines carry ``ts`` (ISO 8601 UTC), ``level``, ``pipeline``, ``logger``, ``msg`` and any
``extra={...}`` fields given at the call, so a supervisor, ``docker logs`` or a log shipper can
parse them without regular expressions.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

LOGGER_NAME = "tradesignals.streaming"
_CHATTY = ("httpx", "httpx2", "httpcore", "httpcore2", "websockets")
"""Client libraries that log every request at INFO; the runtime keeps them at WARNING."""
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; non-standard record attributes become fields."""

    def __init__(self, pipeline: str | None = None) -> None:
        super().__init__()
        self.pipeline = pipeline

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record`` (exceptions go to an ``exc`` field)."""
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
        }
        if self.pipeline:
            out["pipeline"] = self.pipeline
        out["logger"] = record.name
        out["msg"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def configure_logging(
    level: str, pipeline: str | None = None, stream: IO[str] | None = None
) -> logging.Logger:
    """Send the runtime's logs (and the root logger's) as JSON to ``stream`` (stderr).

    Idempotent: a second call replaces the handler it installed, so in-process test runs do
    not print every line twice.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(pipeline))
    handler.set_name("tradesignals-json")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "tradesignals-json"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    return logger


def get_logger(pipeline: str | None = None) -> logging.Logger:
    """The runtime's logger (a child per pipeline when ``pipeline`` is given)."""
    return logging.getLogger(f"{LOGGER_NAME}.{pipeline}" if pipeline else LOGGER_NAME)
