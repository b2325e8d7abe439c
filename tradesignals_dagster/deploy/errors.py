"""Errors raised while deploying, stopping or inspecting pipelines.

:class:`DeployError` itself lives in :mod:`tradesignals_dagster.deploy.runtime` next to the
runtime interface (every runtime raises it); it is re-exported here with the more specific
errors so callers can import them all from one place.
"""

from __future__ import annotations

from tradesignals_dagster.deploy.runtime import DeployError

__all__ = [
    "DeployError",
    "DockerUnavailableError",
    "ImageBuildError",
    "PipelineStartError",
    "UnknownPipelineError",
    "UnknownRuntimeError",
]


class PipelineStartError(DeployError):
    """A pipeline process exited while it was starting; the message carries its log tail.

    ``process_exit_code`` is the pipeline's own exit code (negative: killed by that signal),
    not to be confused with :attr:`exit_code`, the CLI's exit status for this error.
    """

    def __init__(self, key: str, process_exit_code: int | None, log_tail: str, log_path: str) -> None:
        self.key = key
        self.process_exit_code = process_exit_code
        self.log_tail = log_tail
        self.log_path = log_path
        how = "without recording an exit code" if process_exit_code is None else f"with {process_exit_code}"
        tail = log_tail.strip() or "(the log is empty)"
        super().__init__(f"pipeline '{key}' exited during start-up {how}. Last lines of {log_path}:\n{tail}")


class UnknownPipelineError(DeployError):
    """A pipeline id that neither the registry nor the runtime knows (a usage error)."""

    exit_code = 2


class UnknownRuntimeError(DeployError):
    """``TRADESIGNALS_RUNTIME`` names no runtime this product has (a configuration error)."""

    exit_code = 2


class DockerUnavailableError(DeployError):
    """The Docker engine does not answer (not running, wrong ``DOCKER_HOST``, no permission)."""


class ImageBuildError(DeployError):
    """A pipeline image (or its base, or its wheelhouse) could not be built; nothing was deployed."""
