"""The root Dagster definitions, built from the registry at ``TRADESIGNALS_REGISTRY``.

``dagster dev -m tradesignals_dagster.definitions`` and ``workspace.yaml`` load this module. The
registry is read when Dagster calls :func:`defs`, not at import, and any valid registry yields
its own graph.
"""

from __future__ import annotations

import dagster as dg

from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    """Definitions for the registry the environment points at."""
    return build_definitions(load_settings())
