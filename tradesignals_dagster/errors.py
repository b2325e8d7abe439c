"""The root of every error the product raises on purpose.

Each area has its own ``errors.py`` whose classes derive from :class:`TradesignalsError`,
so callers can catch one area's failures or all of them. Client errors from confluent-kafka,
clickhouse-connect, Docker and so on are wrapped, with the original kept as ``__cause__``.
"""

from __future__ import annotations


class TradesignalsError(Exception):
    """Base class for every error the product reports to a user.

    The message is written for the person at the terminal: what went wrong, where, and what
    to do about it. The CLI prints it without a traceback.
    """

    exit_code: int = 1
