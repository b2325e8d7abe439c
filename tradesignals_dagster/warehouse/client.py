"""The one way every component gets a ClickHouse client: :func:`clickhouse_client`.

The URL comes from :meth:`Settings.resolved_clickhouse_url` (``TRADESIGNALS_CLICKHOUSE_URL``,
else the local stack's endpoint), the user and password from the settings' secrets. The
same code talks to a ClickHouse server and to the local endpoint; nothing here knows which.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tradesignals_dagster.settings import Settings
from tradesignals_dagster.warehouse.errors import (
    ClickHouseAuthError,
    ClickHouseUnavailableError,
    WarehouseError,
)

AUTHENTICATION_FAILED = 516
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def client_options(settings: Settings) -> dict[str, Any]:
    """The ``clickhouse_connect.get_client`` keyword arguments for ``settings``' ClickHouse.

    ``http(s)://[user:password@]host[:port][/database]``; credentials in the URL win over the
    settings' user and password. Sessions are off so one client may serve several threads,
    and loopback traffic is not compressed (it only costs CPU there).
    """
    url = settings.resolved_clickhouse_url()
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        return {"dsn": url}
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WarehouseError(
            f"TRADESIGNALS_CLICKHOUSE_URL '{redact_url(url)}' is not an http:// or https:// URL "
            "with a host (e.g. https://clickhouse.example:8443)."
        )
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else ""
    options: dict[str, Any] = {
        "interface": parts.scheme,
        "host": parts.hostname,
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "username": unquote(parts.username) if parts.username else settings.clickhouse_user,
        "password": unquote(parts.password) if parts.password is not None else password,
        "connect_timeout": max(1, int(settings.request_timeout_s)),
        "autogenerate_session_id": False,
    }
    database = parts.path.strip("/")
    if database:
        options["database"] = database
    if parts.hostname in _LOOPBACK:
        options["compress"] = False
    return options


def clickhouse_client(settings: Settings, **overrides: Any) -> Client:
    """A connected clickhouse-connect client for ``settings``' ClickHouse.

    ``overrides`` go to ``get_client`` as they are (``settings={...}``, ``database=...``).
    Raises :class:`ClickHouseUnavailableError` when nothing answers and
    :class:`ClickHouseAuthError` when the credentials are refused; neither message carries the
    password.
    """
    options = client_options(settings) | overrides
    url = redact_url(settings.resolved_clickhouse_url())
    try:
        return clickhouse_connect.get_client(**options)
    except DatabaseError as exc:
        code = getattr(exc, "code", None)
        if code == AUTHENTICATION_FAILED:
            raise ClickHouseAuthError(
                f"ClickHouse at {url} refused user '{options.get('username', '')}' (code 516, "
                "AUTHENTICATION_FAILED): check TRADESIGNALS_CLICKHOUSE_USER and "
                "TRADESIGNALS_CLICKHOUSE_PASSWORD."
            ) from exc
        if isinstance(exc, OperationalError) and code is None:  # no answer at all
            raise ClickHouseUnavailableError(
                f"ClickHouse at {url} did not answer ({type(exc.__cause__ or exc).__name__}). "
                "Start it with `tradesignals stack up`, or set TRADESIGNALS_CLICKHOUSE_URL."
            ) from exc
        raise WarehouseError(f"ClickHouse at {url} failed while connecting: {exc}") from exc
