"""The identity transform: every input record becomes an output record unchanged.

It is the processor of ingest pipelines (feed -> topic, where the runtime already turned the
feed's messages into records of the output schema) and the baseline of benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tradesignals_dagster.streaming.processors.base import BuildContext, SourcePosition


class PassthroughProcessor:
    """Returns its input records as output records (as new dicts, so callers may mutate them)."""

    def process(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[SourcePosition] | None = None,
    ) -> list[dict[str, Any]]:
        """``records`` as a list of dicts."""
        return [r if r.__class__ is dict else dict(r) for r in records]


def build(ctx: BuildContext) -> PassthroughProcessor:
    """The factory ``app.py`` files (and the runtime's default) use."""
    return PassthroughProcessor()
