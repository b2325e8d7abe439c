"""The interface every pipeline runtime implements (local processes now, containers later).

A runtime is told the *desired state* of a pipeline and makes it so: it starts the pipeline if
it is not running, restarts it when the desired state's hash differs from what runs, and does
nothing otherwise. The CLI, the Dagster ``pipelines/<id>`` assets and the sensors all go through
:meth:`PipelineRuntime.deploy`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tradesignals_dagster.errors import TradesignalsError

RunState = Literal["running", "stopped", "crashed", "missing"]


class DeployError(TradesignalsError):
    """A pipeline could not be started, stopped or inspected."""


@dataclass(frozen=True)
class DesiredState:
    """What should run for one pipeline, and a hash that changes whenever any of it does.

    ``env`` holds only non-secret settings; runtimes add secrets from their own environment so
    they never land in state files or Dagster metadata.
    """

    key: str
    command: tuple[str, ...]
    env: dict[str, str]
    config_hash: str
    code_version: str
    image: str | None = None
    workdir: str | None = None
    replicas: int = 1
    limits: dict[str, str] = field(default_factory=dict)
    """Resource limits by name (``cpus``, ``memory``), for runtimes that enforce them."""

    @property
    def version(self) -> str:
        """One string that identifies this desired state (config and code)."""
        return f"{self.config_hash[:12]}-{self.code_version[:12]}"


@dataclass(frozen=True)
class RuntimeStatus:
    """What runs for one pipeline, as the runtime sees it."""

    key: str
    state: RunState
    runtime: str
    runtime_id: str | None = None
    version: str | None = None
    started_at: float | None = None
    restarts: int = 0
    exit_code: int | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        """Whether the pipeline is up."""
        return self.state == "running"


class PipelineRuntime(Protocol):
    """Starts, stops and inspects long-running pipelines."""

    name: str

    def deploy(self, desired: DesiredState, force: bool = False) -> RuntimeStatus:
        """Make ``desired`` run: start it, restart it if its version differs (or ``force``)."""
        ...

    def stop(self, key: str, timeout: float = 30.0) -> bool:
        """Stop the pipeline gracefully (SIGTERM, then kill after ``timeout``); False if not running."""
        ...

    def status(self, key: str) -> RuntimeStatus:
        """The pipeline's current state."""
        ...

    def list(self) -> list[RuntimeStatus]:
        """Every pipeline this runtime knows of."""
        ...

    def logs(self, key: str, lines: int = 100) -> str:
        """The last ``lines`` lines of the pipeline's output."""
        ...

    def follow_logs(
        self, key: str, poll: float = 0.5, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[str]:
        """Output appended from now on (``logs -f``)."""
        ...

    def metrics(self, key: str) -> dict[str, float]:
        """The pipeline's metrics endpoint scraped now (summed over replicas); ``{}`` if silent."""
        ...
