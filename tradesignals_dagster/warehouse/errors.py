"""Errors of the warehouse area: reaching ClickHouse (a real server or the local endpoint)."""

from __future__ import annotations

from tradesignals_dagster.errors import TradesignalsError


class WarehouseError(TradesignalsError):
    """Something about ClickHouse went wrong: it is down, refused credentials, or a query failed."""


class ClickHouseUnavailableError(WarehouseError):
    """ClickHouse did not answer at the configured URL (down, wrong port, wrong host)."""


class ClickHouseAuthError(WarehouseError):
    """ClickHouse refused the configured user or password (code 516, AUTHENTICATION_FAILED)."""
