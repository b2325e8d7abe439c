"""Dagster: the registry as assets, checks and sensors. Built by :func:`build_definitions`."""
