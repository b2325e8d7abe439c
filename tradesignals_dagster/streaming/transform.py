"""One batch through validation and the processor, with the dead-letter routing decisions.

Pure logic, no Kafka: the runner and the offline replay both call :class:`BatchTransformer`, so
what ends in the dead-letter topic live is exactly what a replay rejects.

Routing rules (policy ``dead_letter``, the default):

* a record that could not be decoded/coerced arrives already rejected (stage ``decode``);
* a record breaking a ``min_length``/``max_length`` rule is rejected (stage ``validate``);
* a record the processor refuses (a :class:`~tradesignals_dagster.streaming.processors.base.
  Reject` among its outputs, or - deprecated - an exception naming it) is rejected (stage
  ``process``); after an exception the processor resumes with the records after it;
* anything else the processor raises stops the pipeline (:class:`ProcessorError`).

With policy ``stop`` the first rejection raises :class:`DeadLetterStopError` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tradesignals_dagster.streaming.errors import DeadLetterStopError, ProcessorError
from tradesignals_dagster.streaming.processors.base import Processor, Reject, SourcePosition
from tradesignals_dagster.streaming.records import RecordSchema

DeadLetterPolicy = Literal["dead_letter", "stop"]
Stage = Literal["decode", "validate", "process"]


@dataclass(frozen=True)
class Rejection:
    """A record of the batch that goes to the dead-letter topic, and why."""

    index: int
    stage: Stage
    error: str
    error_type: str


@dataclass
class TransformResult:
    """The output records of a batch and its rejected records (sorted by index)."""

    outputs: list[dict[str, Any]]
    rejections: list[Rejection] = field(default_factory=list)


class BatchTransformer:
    """Validates a decoded batch, runs the processor and collects the rejections."""

    def __init__(
        self,
        processor: Processor,
        schema: RecordSchema | None = None,
        policy: DeadLetterPolicy = "dead_letter",
    ) -> None:
        self.processor = processor
        self.schema = schema if schema is not None and schema.has_rules else None
        self.policy = policy

    def run(
        self,
        records: Sequence[dict[str, Any] | None],
        positions: Sequence[SourcePosition] | None = None,
        rejections: Sequence[Rejection] = (),
    ) -> TransformResult:
        """Transform ``records`` (``None`` where decoding failed, listed in ``rejections``)."""
        rejected = list(rejections)
        if self.schema is not None:
            for i, msg in self.schema.batch_violations(records):
                rejected.append(Rejection(i, "validate", msg, "ValidationError"))
        if rejected:
            self._check_policy(rejected[0])
            skip = {r.index for r in rejected}
            index = [i for i, rec in enumerate(records) if rec is not None and i not in skip]
            good: list[dict[str, Any]] = [records[i] for i in index]  # type: ignore[misc]
            pos = [positions[i] for i in index] if positions is not None else None
        else:
            index = None
            good = records  # type: ignore[assignment]
            pos = list(positions) if positions is not None else None
        outputs = self._process(good, pos, index, rejected)
        rejected.sort(key=lambda r: r.index)
        return TransformResult(outputs, rejected)

    def _process(
        self,
        records: Sequence[dict[str, Any]],
        positions: list[SourcePosition] | None,
        index: list[int] | None,
        rejected: list[Rejection],
    ) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = []
        start = 0
        n = len(records)
        while start < n:
            recs = records[start:] if start else records
            pos = positions[start:] if positions is not None and start else positions
            try:
                produced = self.processor.process(recs, pos)
            except Exception as exc:
                bad = _locate(exc, records, positions, start)
                partial = _partial_outputs(exc)
                if bad is None or partial is None:
                    raise ProcessorError(
                        f"the processor failed without naming a bad record: {type(exc).__name__}: {exc}"
                    ) from exc
                outputs.extend(partial)
                rejection = Rejection(index[bad] if index else bad, "process", str(exc), type(exc).__name__)
                rejected.append(rejection)
                self._check_policy(rejection)
                start = bad + 1
                continue
            if any(o.__class__ is Reject for o in produced):
                produced = self._rejects(produced, records, positions, start, index, rejected)
            outputs.extend(produced)
            break
        return outputs

    def _rejects(
        self,
        produced: list[Any],
        records: Sequence[dict[str, Any]],
        positions: Sequence[SourcePosition] | None,
        start: int,
        index: list[int] | None,
        rejected: list[Rejection],
    ) -> list[dict[str, Any]]:
        """``produced`` without its :class:`Reject` entries, which become rejections."""
        kept: list[dict[str, Any]] = []
        for out in produced:
            if out.__class__ is not Reject:
                kept.append(out)
                continue
            bad = _locate(out, records, positions, start)
            if bad is None:
                raise ProcessorError(
                    f"the processor rejected a record that is not in its batch: {out.reason}"
                )
            rejection = Rejection(index[bad] if index else bad, "process", out.reason, out.error_type)
            rejected.append(rejection)
            self._check_policy(rejection)
        return kept

    def _check_policy(self, rejection: Rejection) -> None:
        if self.policy == "stop":
            raise DeadLetterStopError(
                f"record {rejection.index} of the batch was rejected at {rejection.stage}: "
                f"{rejection.error} (dead-letter policy is 'stop'; nothing of the batch was committed)"
            )


def _partial_outputs(exc: BaseException) -> list[dict[str, Any]] | None:
    """What the processor produced before the bad record, if the exception says so."""
    for name in ("outputs", "bars"):
        value = getattr(exc, name, None)
        if isinstance(value, list):
            return value
    return None


def _locate(
    exc: BaseException | Reject,
    records: Sequence[Any],
    positions: Sequence[SourcePosition] | None,
    start: int,
) -> int | None:
    """Index in ``records`` of the record ``exc`` (or a Reject) names (by position, else by
    identity)."""
    position = getattr(exc, "position", None)
    if position is not None and positions is not None:
        target = tuple(position)
        for i in range(start, len(positions)):
            if tuple(positions[i]) == target:
                return i
    for name in ("trade", "record"):
        rec = getattr(exc, name, None)
        if rec is not None:
            for i in range(start, len(records)):
                if records[i] is rec:
                    return i
    return None
