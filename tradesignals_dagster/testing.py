"""Test helpers for your own pipelines: run a processor in memory, as the runtime would.

``run_records`` pushes records through :class:`~tradesignals_dagster.streaming.transform.
BatchTransformer` - the code path of ``tradesignals pipelines replay`` and of the live runner -
so schema rules, :class:`~tradesignals_dagster.streaming.processors.base.Reject` entries and
dead-letter routing behave exactly as deployed. ``build_processor`` builds a pipeline's
processor from the registry and its ``config.yaml`` (plus overrides) the way a replay does.
``round_trip_state`` moves a processor's state through JSON into a fresh processor, as a
restart through the ``<pipeline>.state`` topic (:class:`StateTopic`) does::

    from tradesignals_dagster.testing import build_processor, run_records

    proc = build_processor("my_pipeline", overrides={"window.grace_ms": 0})
    result = run_records(proc, [{"symbol": "A", "timestamp": 1, ...}])
    assert result.outputs == [...] and result.rejected == []

For integration tests against a real broker, the ``tradesignals_stack`` fixture of
:mod:`tradesignals_dagster.pytest_plugin` starts the local stack once per test session
(``pytest_plugins = ["tradesignals_dagster.pytest_plugin"]`` in your conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradesignals_dagster.streaming.processors.base import (
    BuildContext,
    Processor,
    SourcePosition,
    StatefulProcessor,
    dirty_keys,
    is_stateful,
)
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.transform import BatchTransformer, Rejection


@dataclass
class RunResult:
    """What the processor made of the records: outputs in order, rejections with their index
    in the input and reason (what would have gone to the dead-letter topic)."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def rejected_indexes(self) -> list[int]:
        """Indexes (in the input records) of the rejected records."""
        return [r.index for r in self.rejected]


def run_records(
    processor: Processor,
    records: Sequence[Mapping[str, Any]],
    *,
    positions: Sequence[SourcePosition] | None = None,
    input_schema: dict[str, Any] | None = None,
    batch_size: int = 10_000,
) -> RunResult:
    """Run ``records`` through ``processor`` in batches of ``batch_size``, as the runtime does.

    ``input_schema`` (Avro JSON) turns on the schema's ``min_length``/``max_length`` rules;
    ``positions`` gives each record a ``(partition, offset)`` as a Kafka input would.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    transformer = BatchTransformer(processor, RecordSchema(input_schema) if input_schema else None)
    result = RunResult()
    for start in range(0, len(records), batch_size):
        batch = [dict(r) for r in records[start : start + batch_size]]
        pos = list(positions[start : start + batch_size]) if positions is not None else None
        out = transformer.run(batch, pos)
        result.outputs.extend(out.outputs)
        for r in out.rejections:
            result.rejected.append(Rejection(r.index + start, r.stage, r.error, r.error_type))
    return result


def snapshots(processor: object, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """JSON round-tripped snapshots of ``keys`` (default: the keys changed since the last call),
    exactly what the runtime would write to the state topic."""
    if not is_stateful(processor):
        raise TypeError(f"{type(processor).__name__} keeps no state (no dirty_keys/snapshot/restore)")
    stateful: StatefulProcessor = processor  # type: ignore[assignment]
    chosen = sorted(dirty_keys(processor) if keys is None else keys)
    snaps = [stateful.snapshot(k) for k in chosen]
    return [json.loads(json.dumps(s, separators=(",", ":"))) for s in snaps if s is not None]


class StateTopic:
    """An in-memory compacted ``<pipeline>.state`` topic: the latest snapshot per key.

    :meth:`checkpoint` writes what the runtime writes at a checkpoint (the snapshots of the keys
    the processor changed since the last one); :meth:`restore` loads every key into a fresh
    processor, as a restart does.
    """

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any] | None] = {}

    def checkpoint(self, processor: object) -> int:
        """Store the snapshots of the keys ``processor`` changed; returns how many."""
        if not is_stateful(processor):
            raise TypeError(f"{type(processor).__name__} keeps no state (no dirty_keys/snapshot/restore)")
        stateful: StatefulProcessor = processor  # type: ignore[assignment]
        keys = sorted(dirty_keys(processor))
        for key in keys:
            snap = stateful.snapshot(key)
            self.latest[key] = None if snap is None else json.loads(json.dumps(snap, separators=(",", ":")))
        return len(keys)

    def restore(self, processor: Processor) -> Processor:
        """``processor`` with every stored snapshot restored into it."""
        target: StatefulProcessor = processor  # type: ignore[assignment]
        target.restore([s for s in self.latest.values() if s is not None])
        return processor


def round_trip_state(
    processor: object, make: Callable[[], Processor], topic: StateTopic | None = None
) -> Processor:
    """A new processor from ``make()`` restored from ``processor``'s state through JSON, as a
    restart does. Pass the same ``topic`` on every call when restarting more than once (keys
    unchanged since the previous restart are only in the topic)."""
    topic = topic if topic is not None else StateTopic()
    topic.checkpoint(processor)
    return topic.restore(make())


def build_processor(
    pipeline: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    registry: Path | str | None = None,
    pipelines_dir: Path | str | None = None,
) -> Processor:
    """Pipeline ``pipeline``'s processor from its ``app.py`` and ``config.yaml`` with ``overrides``
    (dotted keys, like ``--set``), as ``tradesignals pipelines replay`` builds it. ``registry``
    and ``pipelines_dir`` default to the settings (``TRADESIGNALS_REGISTRY`` etc.)."""
    from tradesignals_dagster.registry.application import load_app
    from tradesignals_dagster.settings import load_settings
    from tradesignals_dagster.streaming.config import load_factory
    from tradesignals_dagster.streaming.replay_config import build_replay_processor, replay_settings

    settings = load_settings(
        registry=Path(registry) if registry is not None else None,
        pipelines_dir=Path(pipelines_dir) if pipelines_dir is not None else None,
    )
    app = load_app(settings)
    pipe = app.pipelines[pipeline]
    config, options = replay_settings(pipe, overrides)
    out_schema = app.schemas.get(pipe.output.topic_id or "")
    in_topic = pipe.input.kafka_topic_id if pipe.input.type == "kafka" else pipe.output.topic_id
    in_schema = app.schemas.get(in_topic or "")
    ctx = BuildContext(app, pipe, config, in_schema, out_schema, {"test": True}, options.key_field)
    return build_replay_processor(load_factory(settings.pipelines_dir, pipeline), ctx, overrides)
