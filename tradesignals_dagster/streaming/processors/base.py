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
  header). Declare identity either this way or with ``runtime.identity_fields`` in config.yaml
  (e.g. ``[symbol, sequence]``); only when neither is given does the runtime fall back to its
  old guess (``symbol:sequence``, ``trade_id``, ``id``, ``event_id``, else a value hash).
* State (all three or none): ``dirty_keys() -> set[str]``, ``snapshot(key) -> dict | None``
  and ``restore(snapshots)``. Keys are whatever the processor keys its state by - by
  convention the pipeline's key field (``ctx.key_field``: ``runtime.key_field``, the message
  key). The runtime writes the snapshots of the dirty keys to the compacted
  ``<pipeline>.state`` topic (before committing input offsets) and restores them on start and
  on partition assignment. A snapshot may carry ``positions`` (``[[partition, offset], ...]``);
  then only snapshots for the partitions this instance owns are restored.
  Deprecated (one release): ``dirty_symbols()`` in place of ``dirty_keys()`` still works and
  warns with a :class:`DeprecationWarning`.
* Bad records: put a :class:`Reject` (``Reject(record, reason)``) in the returned list where
  the record would have produced output, and go on with the next record. The runtime
  dead-letters it (or stops, with ``dead_letter: stop``) and never publishes the Reject.
  Deprecated (one release): raising an exception carrying ``position``/``trade``/``record`` and
  ``bars``/``outputs`` (what the volume-bars processor did before it returned Rejects) still
  works: the runtime dead-letters that record and calls
  ``process`` again with the rest of the batch. Any other exception stops the pipeline.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tradesignals_dagster.registry.models import StreamingApplication, StreamingPipeline
from tradesignals_dagster.streaming.errors import PipelineConfigError

SourcePosition = tuple[int, int]
"""``(partition, offset)`` of a record in its source topic."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A record the processor refuses, returned among its outputs instead of raising.

    ``record`` is the input record object as given to ``process`` (found by identity);
    ``position`` its ``(partition, offset)`` when known (found by position first);
    ``error_type`` names the kind of problem in the dead letter's ``error_type`` header.
    """

    record: Mapping[str, Any]
    reason: str
    position: SourcePosition | None = None
    error_type: str = "Rejected"


class Processor(Protocol):
    """A pipeline transform: a batch of input records in, output records out."""

    def process(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[SourcePosition] | None = None,
    ) -> list[Any]:
        """The output records (dicts) produced by ``records``, and :class:`Reject` entries for
        refused records (see the module docstring)."""
        ...


@runtime_checkable
class StatefulProcessor(Protocol):
    """A processor whose state must survive a restart (kept in the ``<pipeline>.state`` topic)."""

    def dirty_keys(self) -> set[str]:
        """Keys whose state changed since the previous call."""
        ...

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """JSON-serializable state of ``key``, or None when it has none."""
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
    key_field: str | None = "symbol"
    """The pipeline's key field (``runtime.key_field``): the message key, and by convention
    what a stateful processor keys its state by."""

    def require_field(self, name: str, what: str, *, schema: str = "input") -> None:
        """Refuse (:class:`PipelineConfigError`, exit 2) a setting
        ``what`` naming field ``name`` that the input (or output) schema lacks."""
        sch = self.input_schema if schema == "input" else self.output_schema
        names = [f.get("name") for f in (sch or {}).get("fields", [])]
        if name not in names:
            raise PipelineConfigError(
                f"pipelines/{self.pipeline.key}/config.yaml: {what}: the {schema} schema "
                f"{(sch or {}).get('name', '?')} has no field {name!r} (fields: {', '.join(map(str, names))})"
            )

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
    """Whether ``processor`` implements the state methods (``dirty_keys`` or the deprecated
    ``dirty_symbols``)."""
    if isinstance(processor, StatefulProcessor):
        return True
    return all(callable(getattr(processor, n, None)) for n in ("dirty_symbols", "snapshot", "restore"))


def dirty_keys(processor: object) -> set[str]:
    """``processor.dirty_keys()``, or the deprecated ``dirty_symbols()`` with a warning."""
    method = getattr(processor, "dirty_keys", None)
    if method is None:
        warnings.warn(
            f"{type(processor).__name__}.dirty_symbols() is deprecated and goes in the next release: "
            "rename it dirty_keys() (state is keyed by the pipeline's key field)",
            DeprecationWarning,
            stacklevel=2,
        )
        method = processor.dirty_symbols  # type: ignore[attr-defined]
    keys: set[str] = method()
    return keys
