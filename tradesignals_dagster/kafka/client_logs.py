"""librdkafka's own log lines go to a Python debug logger, not to the terminal.

Left alone, librdkafka writes every connection attempt to stderr (``%3|...|FAIL|rdkafka#...
Connection refused``), about 200 lines before ``tradesignals plan`` gets to say, in one line,
that Kafka is down. :func:`quiet_config` adds confluent-kafka's ``logger`` setting to a client
configuration so those lines reach the ``tradesignals.kafka.librdkafka`` logger at DEBUG
instead (librdkafka's own level is kept in the record as ``librdkafka_level``); our own error
messages say what happened. Set that logger to DEBUG to see them again.

With a ``logger`` set, confluent-kafka queues the lines on the client's main queue: producers
and consumers deliver them from ``poll()``, an ``AdminClient`` only when it is polled, which
:class:`~tradesignals_dagster.kafka.admin.KafkaAdmin` does after each call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LOGGER_NAME = "tradesignals.kafka.librdkafka"
_log = logging.getLogger(LOGGER_NAME)


class LibrdkafkaDebugLog:
    """What confluent-kafka calls as its ``logger``: every line is logged at DEBUG."""

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Called by confluent-kafka with a Python logging level and a %-format message."""
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(msg, *args, extra={"librdkafka_level": logging.getLevelName(level)})


_DEBUG_LOG = LibrdkafkaDebugLog()


def quiet_config(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` with librdkafka's log lines routed to the debug logger (a copy; ``conf`` is
    not changed). A ``logger`` already in ``conf`` is kept."""
    out = dict(conf)
    out.setdefault("logger", _DEBUG_LOG)
    return out
