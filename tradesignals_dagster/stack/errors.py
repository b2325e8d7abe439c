"""Errors raised while starting, stopping or inspecting the local dev stack."""

from __future__ import annotations

from tradesignals_dagster.errors import TradesignalsError


class StackError(TradesignalsError):
    """Something about the local stack (broker, schema registry) went wrong."""

    exit_code = 3


class JavaMissingError(StackError):
    """``java`` (17 or newer) or ``mvn`` is not installed, so the broker cannot run."""


class JarResolveError(StackError):
    """Maven could not resolve the Kafka broker jars."""


class PortInUseError(StackError):
    """A port the stack wants to listen on is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        self.port = port
        self.what = what
        super().__init__(
            f"Port {port} on 127.0.0.1 ({what}) is already in use by another process. "
            "Stop that process, or pick another port (omit the port to choose a free one)."
        )


class BrokerStartError(StackError):
    """The Kafka broker did not come up; the message carries the tail of its log.

    ``exited`` tells a process that died during start-up from one that was stopped because it
    did not answer in time.
    """

    def __init__(self, message: str, *, exited: bool = False) -> None:
        self.exited = exited
        super().__init__(message)


class RegistryStartError(StackError):
    """The schema registry service did not come up; the message carries its log tail."""


class ClickHouseStartError(StackError):
    """The local ClickHouse endpoint did not come up; the message carries its log tail."""
