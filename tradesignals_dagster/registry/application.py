"""The one way to load the application: settings in, validated registry out.

The CLI, the Dagster definitions and resource, the pipeline entry point and replay all call
these two functions, so they read the same registry with the same pipelines directory (and so
the same merged ``config.yaml``), and agree on every desired-state hash whichever working
directory they were started from. Where the pipelines directory is comes from one rule, in
:class:`~tradesignals_dagster.settings.Settings`.
"""

from __future__ import annotations

from tradesignals_dagster.registry.loader import LoadResult, load_registry
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings


def check_app(settings: Settings) -> LoadResult:
    """Load and check the registry ``settings`` name; every problem is in the result."""
    return load_registry(settings.registry, settings.pipelines_to_check())


def load_app(settings: Settings) -> StreamingApplication:
    """The validated application, or a RegistryError (exit 2) listing every problem."""
    return check_app(settings).require()
