"""Errors of the ML area: training input, artifacts in the object store, scoring."""

from __future__ import annotations

from tradesignals_dagster.errors import TradesignalsError


class ModelError(TradesignalsError):
    """Something about a model, its training or its artifact went wrong."""


class InvalidTrainingInput(ModelError):
    """The training request is wrong: unknown model, empty window, a column the data lacks (exit 2)."""

    exit_code = 2


class CorruptArtifact(ModelError):
    """A model artifact in the object store does not match its checksum or cannot be loaded."""


class NoPromotedModel(ModelError):
    """No version of the model has been promoted yet (no ``current`` pointer)."""
