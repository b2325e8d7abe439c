"""``TradesignalsRegistry``: a Dagster Component that turns a registry directory into the same
assets, checks and sensors as ``tradesignals_dagster.definitions``.

In a ``dg`` project, a ``defs.yaml`` such as::

    type: tradesignals_dagster.components.TradesignalsRegistry
    attributes:
      registry: ../../../registry
      pipelines_dir: ../../../pipelines

loads the registry; relative paths are taken from the ``defs.yaml``'s folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.settings import load_settings


class TradesignalsRegistry(dg.Component, dg.Model, dg.Resolvable):
    """The YAML registry (topics, Avro schemas, pipelines) as Dagster definitions."""

    registry: str = Field("registry", description="Directory holding pipelines.yaml.")
    pipelines_dir: str = Field("pipelines", description="Directory with one folder per pipeline.")
    state_dir: str | None = Field(None, description="State directory; TRADESIGNALS_STATE_DIR if unset.")

    def build_defs(self, context: Any) -> dg.Definitions:
        """Load and validate the registry now, and build its definitions."""
        base = Path(getattr(context, "path", None) or Path.cwd())
        if base.is_file():
            base = base.parent

        def resolve(value: str) -> Path:
            path = Path(value)
            return path if path.is_absolute() else (base / path).resolve()

        return build_definitions(
            load_settings(
                registry=resolve(self.registry),
                pipelines_dir=resolve(self.pipelines_dir),
                state_dir=resolve(self.state_dir) if self.state_dir else None,
            )
        )
