"""The contract between the runtime and a pipeline's transform (its *processor*).

A pipeline's ``app.py`` defines ``build(ctx: BuildContext) -> Processor`` and calls
:func:`tradesignals_dagster.streaming.entry.main` with it. The runtime owns everything else
(reading, decoding, validation, dead letters, producing, commits, state, metrics).

A **processor** has one required method::

    process(records, positions=None) -> list[dict]

``records`` are dicts of the input schema (decimals as scaled ints, timestamps as epoch ints);
``positions``, when given (kafka inputs), runs alongside them with each record's
``(partition, offset)``. It returns the output records the batch produced, in order.

Optional members:

* ``record_id(record) -> str``: the deterministic identity of an output record (the ``ts-id``
  header). Without it the runtime uses ``symbol:sequence``, ``trade_id`` or a value hash.
* State (all three or none): ``dirty_symbols() -> set[str]``, ``snapshot(key) -> dict | None``
  and ``restore(snapshots)``. The runtime writes the snapshots of the dirty keys to the
  compacted ``<pipeline>.state`` topic after each batch (before committing input offsets) and
  restores them on start and on partition assignment. A snapshot may carry ``positions``
  (``[[partition, offset], ...]``); then only snapshots for the partitions this instance owns
  are restored.
* Bad records: raise an exception carrying ``position`` (the record's ``(partition, offset)``)
  or ``trade``/``record`` (the record object), plus ``bars``/``outputs`` (what the batch
  produced before it), like :class:`~tradesignals_dagster.streaming.processors.volume_bars.
  InvalidTradeError`. The runtime dead-letters that record and calls ``process`` again with
  the rest of the batch. Any other exception stops the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tradesignals_dagster.registry.models import StreamingApplication, StreamingPipeline

SourcePosition = tuple[int, int]
"""``(partition, offset)`` of a record in its source topic."""


class Processor(Protocol):
    """A pipeline transform: a batch of input records in, output records out."""

    def process(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[SourcePosition] | None = None,
    ) -> list[dict[str, Any]]:
        """The output records produced by ``records`` (see the module docstring)."""
        ...


@runtime_checkable
class StatefulProcessor(Protocol):
    """A processor whose state must survive a restart (kept in the ``<pipeline>.state`` topic)."""

    def dirty_symbols(self) -> set[str]:
        """Keys whose state changed since the previous call."""
        ...

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        """JSON-serializable state of ``symbol``, or None when it has none."""
        ...

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by :meth:`snapshot`."""
        ...


@dataclass(frozen=True)
class BuildContext:
    """What ``build`` gets to construct the processor.

    ``config`` is the pipeline's ``config.yaml`` (plus ``--set`` overrides in replays) without
    the ``runtime`` section, which belongs to the runtime.
    """

    app: StreamingApplication
    pipeline: StreamingPipeline
    config: dict[str, Any]
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    extras: dict[str, Any] = field(default_factory=dict)

    def decimal_scale(self, field_name: str, default: int = 4) -> int:
        """Scale of decimal field ``field_name`` in the input schema (else the output's)."""
        for schema in (self.input_schema, self.output_schema):
            for f in (schema or {}).get("fields", []):
                t = f.get("type")
                if f.get("name") == field_name and isinstance(t, dict) and t.get("logicalType") == "decimal":
                    return int(t.get("scale", 0))
        return default


ProcessorFactory = Callable[[BuildContext], Processor]
"""The ``build`` function of a pipeline's ``app.py``."""


def is_stateful(processor: object) -> bool:
    """Whether ``processor`` implements the state methods."""
    return isinstance(processor, StatefulProcessor)
