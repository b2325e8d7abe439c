"""pytest fixtures for integration tests of your own pipelines: the local stack, once per session.

Enable it in your ``conftest.py`` (it is not loaded implicitly, so it never starts anything in a
test run that did not ask for it)::

    pytest_plugins = ["tradesignals_dagster.pytest_plugin"]

    def test_my_pipeline_writes_bars(tradesignals_stack):
        tradesignals_stack.apply()                      # topics and schemas of your registry
        ...                                             # produce, run, read back

``tradesignals_stack`` starts a Kafka broker, the schema registry and the ClickHouse endpoint on
free loopback ports under a temporary state directory (exactly what ``tradesignals stack up``
runs), waits until each answers, and stops them at the end of the session. Its ``settings``
are your project's (registry and pipelines found as the CLI finds them, ``TRADESIGNALS_*``
variables and ``.env`` honoured) with the connection settings replaced by the stack's, so the
code under test cannot reach a real cluster by accident.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tradesignals_dagster.control.apply import ApplyResult, ControlPlane
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings, load_settings
from tradesignals_dagster.stack.stack import stack_down, stack_up

STACK_TIMEOUT_S = 180.0
"""A cold start resolves the broker's jars (once per machine) and starts a JVM."""


@dataclass(frozen=True)
class TradesignalsStack:
    """The running local stack and settings that point your project at it."""

    settings: Settings
    info: dict[str, Any] = field(repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return str(self.info["bootstrap_servers"])

    @property
    def schema_registry_url(self) -> str:
        return str(self.info["schema_registry_url"])

    def app(self) -> StreamingApplication:
        """Your registry, loaded the one way every entry point loads it."""
        return load_app(self.settings)

    def apply(self) -> ApplyResult:
        """Create your registry's topics and register its schemas on the stack (idempotent)."""
        plane = ControlPlane.from_settings(self.settings)
        return plane.apply(plane.plan(self.app()))


@pytest.fixture(scope="session")
def tradesignals_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TradesignalsStack]:
    """The local stack on free ports for this test session (see the module docstring)."""
    state_dir = tmp_path_factory.mktemp("tradesignals-stack")
    base = load_settings(state_dir=state_dir)
    try:
        info = stack_up(base, timeout=STACK_TIMEOUT_S)
    except TradesignalsError as exc:
        stack_down(base)
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    settings = base.model_copy(
        update={
            "bootstrap_servers": info["bootstrap_servers"],
            "schema_registry_url": info["schema_registry_url"],
            "clickhouse_url": info.get("clickhouse_url"),
        }
    )
    try:
        yield TradesignalsStack(settings=settings, info=info)
    finally:
        stack_down(base)
