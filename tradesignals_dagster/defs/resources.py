"""The one resource the assets, checks and sensors share: settings resolved when used."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.deploy.operations import runtime_for
from tradesignals_dagster.deploy.runtime import PipelineRuntime
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings, load_settings


class TradesignalsResource(dg.ConfigurableResource):  # type: ignore[type-arg,misc,unused-ignore]
    """Where the registry is and how to reach Kafka, the schema registry and the runtime.

    Unset fields fall back to the ``TRADESIGNALS_*`` environment, read when the resource is
    used, never at import. Secrets stay in the environment; nothing here is a secret.
    """

    registry: str | None = None
    pipelines_dir: str | None = None
    state_dir: str | None = None

    def settings(self) -> Settings:
        """The typed settings, resolved now."""
        return load_settings(
            registry=Path(self.registry) if self.registry else None,
            pipelines_dir=Path(self.pipelines_dir) if self.pipelines_dir else None,
            state_dir=Path(self.state_dir) if self.state_dir else None,
        )

    def app(self) -> StreamingApplication:
        """The registry as it is on disk now (a RegistryError lists every problem)."""
        return load_app(self.settings())

    def control(self) -> ControlPlane:
        """Kafka admin and schema registry clients."""
        return ControlPlane.from_settings(self.settings())

    def runtime(self) -> PipelineRuntime:
        """The pipeline runtime."""
        return runtime_for(self.settings())
