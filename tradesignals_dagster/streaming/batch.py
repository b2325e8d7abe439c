"""The unit of work of the runner: one polled batch, wherever it came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tradesignals_dagster.streaming.errors import RecordError
from tradesignals_dagster.streaming.inputs import InputBatch, InputFailure
from tradesignals_dagster.streaming.processors.base import SourcePosition
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.transform import Rejection


@dataclass
class Batch:
    """Records of one poll, aligned with what is needed to dead-letter and commit them.

    ``records[i]`` is ``None`` when message ``i`` could not be decoded (``rejections`` says
    why). ``positions`` are the Kafka ``(partition, offset)`` pairs (kafka inputs only; the
    processor uses them to skip records it already applied). Feed inputs number their
    records from ``first_sequence`` instead (the ``source_offset`` of their dead letters).
    """

    source: str
    records: list[dict[str, Any] | None]
    raw: Sequence[Any]
    keys: Sequence[bytes | None] | None = None
    positions: list[SourcePosition] | None = None
    rejections: list[Rejection] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    first_sequence: int = 0

    def __len__(self) -> int:
        return len(self.records)

    def origin(self, index: int) -> tuple[int, int]:
        """``(partition, offset)`` of record ``index`` (``-1``, sequence for feeds)."""
        if self.positions is not None:
            return self.positions[index]
        return -1, self.first_sequence + index


def feed_batch(
    part: InputBatch, typed: bool, schema: RecordSchema, source: str, first_sequence: int
) -> Batch:
    """A feed's rows as a batch: coerced to ``schema`` (unless ``typed``), failures rejected."""
    rows = part.records
    rejections: list[Rejection] = []
    raw: list[Any] = rows
    records: list[dict[str, Any] | None]
    if typed and not any(isinstance(r, InputFailure) for r in rows):
        records = rows
    else:
        records = []
        raw = []
        coerce = schema.coerce
        for i, row in enumerate(rows):
            if isinstance(row, InputFailure):
                records.append(None)
                raw.append(row.raw)
                rejections.append(Rejection(i, "decode", row.error, "InputFailure"))
                continue
            raw.append(row)
            try:
                records.append(row if typed else coerce(row))
            except RecordError as exc:
                records.append(None)
                rejections.append(Rejection(i, "decode", str(exc), "RecordError"))
    return Batch(
        source=source, records=records, raw=raw, rejections=rejections, first_sequence=first_sequence
    )
