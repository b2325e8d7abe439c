"""Dagster Components: the registry as a component, for projects laid out for ``dg``."""

from tradesignals_dagster.components.registry import TradesignalsRegistry

__all__ = ["TradesignalsRegistry"]
