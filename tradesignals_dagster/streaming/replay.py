"""Offline replay: a pipeline's transform over a file of input records, no Kafka involved.

``tradesignals pipelines replay <id> --input FILE --output FILE --set key=value`` calls
:func:`replay_file`. The input is Parquet, CSV or JSON Lines with columns named as the input
schema's fields (the input topic's schema; for feed pipelines the output topic's); the output
format follows the output file's extension. Records go through exactly what the live runtime
does (coercion, ``min_length``/``max_length`` validation, the processor, the dead-letter
routing), in file order, so a replay of the trades a live pipeline consumed yields the same
bars. Rejected rows are counted, and written to ``rejects_path`` (JSON Lines) when given.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.streaming.config import load_factory
from tradesignals_dagster.streaming.errors import PipelineConfigError, RecordError
from tradesignals_dagster.streaming.fileio import AtomicOutput, refuse_same_file
from tradesignals_dagster.streaming.files import BadRow, RecordWriter, read_rows
from tradesignals_dagster.streaming.processors.base import BuildContext, ProcessorFactory
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay_config import build_replay_processor, replay_settings
from tradesignals_dagster.streaming.transform import BatchTransformer, Rejection

REPLAY_BATCH = 10_000
MAX_REPORTED = 20
log = logging.getLogger("tradesignals.streaming.replay")


@dataclass
class ReplayResult:
    """What a replay read, wrote and rejected (the first rejections, with their row numbers)."""

    pipeline: str
    input_path: Path
    output_path: Path
    records_in: int = 0
    records_out: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the CLI."""
        return {
            "pipeline": self.pipeline,
            "input": str(self.input_path),
            "output": str(self.output_path),
            "records_in": self.records_in,
            "records_out": self.records_out,
            "rejected": self.rejected,
            "rejections": self.rejections,
        }


def replay_file(
    app: StreamingApplication,
    pipeline_key: str,
    input_path: Path | str,
    output_path: Path | str,
    overrides: Mapping[str, Any] | None = None,
    *,
    pipelines_dir: Path | str | None = None,
    build: ProcessorFactory | None = None,
    rejects_path: Path | str | None = None,
) -> ReplayResult:
    """Run pipeline ``pipeline_key``'s transform over ``input_path`` into ``output_path``.

    ``overrides`` change the pipeline's config (``{"bar_volume": 100}``; dotted keys and
    string values as in ``--set``). The transform is ``build`` from
    ``<pipelines_dir>/<id>/app.py`` (``pipelines_dir`` defaults to the settings' one; a
    pipeline without app.py passes records through) unless ``build`` is given.
    """
    if pipeline_key not in app.pipelines:
        known = ", ".join(sorted(app.pipelines)) or "none"
        raise PipelineConfigError(f"no pipeline {pipeline_key!r} in the registry (known: {known})")
    pipe = app.pipelines[pipeline_key]
    out_topic = pipe.output.topic_id
    if not out_topic or out_topic not in app.schemas:
        raise PipelineConfigError(f"pipeline {pipeline_key}: output topic {out_topic!r} has no Avro schema")
    in_topic = pipe.input.kafka_topic_id if pipe.input.type == "kafka" else out_topic
    if in_topic not in app.schemas:
        raise PipelineConfigError(f"pipeline {pipeline_key}: input topic {in_topic!r} has no Avro schema")
    in_schema, out_schema = app.schemas[in_topic], app.schemas[out_topic]
    config, options = replay_settings(pipe, overrides)
    if build is None:
        if pipelines_dir is None:
            from tradesignals_dagster.settings import load_settings

            pipelines_dir = load_settings().pipelines_dir
        build = load_factory(Path(pipelines_dir), pipeline_key)
    processor = build_replay_processor(
        build,
        BuildContext(app, pipe, config, in_schema, out_schema, {"replay": True}, options.key_field),
        overrides,
    )
    in_records, out_records = RecordSchema(in_schema), RecordSchema(out_schema)
    transformer = BatchTransformer(processor, in_records, options.dead_letter)
    result = ReplayResult(pipeline_key, Path(input_path), Path(output_path))
    # Outputs are written to temporary files renamed into place at the end: a failure leaves
    # nothing half-written, and neither may be the input (also not through a link).
    rejects_file = Path(rejects_path) if rejects_path else None
    refuse_same_file({"input": Path(input_path), "output": Path(output_path), "rejects file": rejects_file})
    rejects_out = AtomicOutput(rejects_file) if rejects_file else None
    rejects = rejects_out.text() if rejects_out else None
    try:
        with RecordWriter(output_path, out_records) as writer:
            rows: list[Any] = []
            for row in read_rows(input_path):
                rows.append(row)
                if len(rows) >= REPLAY_BATCH:
                    _run_batch(rows, result, in_records, transformer, writer, rejects)
                    rows = []
            if rows:
                _run_batch(rows, result, in_records, transformer, writer, rejects)
            result.records_out = writer.count
        if rejects_out is not None:
            rejects_out.commit()
    finally:
        if rejects_out is not None:
            rejects_out.discard()  # nothing to do once committed
    log.info("replay finished", extra=result.as_dict() | {"rejections": len(result.rejections)})
    return result


def _run_batch(
    rows: list[Any],
    result: ReplayResult,
    schema: RecordSchema,
    transformer: BatchTransformer,
    writer: RecordWriter,
    rejects: Any,
) -> None:
    records: list[dict[str, Any] | None] = []
    pre: list[Rejection] = []
    for i, row in enumerate(rows):
        if isinstance(row, BadRow):
            records.append(None)
            pre.append(Rejection(i, "decode", row.error, "BadRow"))
            continue
        try:
            records.append(schema.coerce(row))
        except RecordError as exc:
            records.append(None)
            pre.append(Rejection(i, "decode", str(exc), "RecordError"))
    out = transformer.run(records, None, pre)
    writer.write(out.outputs)
    base = result.records_in
    for rej in out.rejections:
        entry = {"row": base + rej.index + 1, "stage": rej.stage, "error": rej.error}
        if len(result.rejections) < MAX_REPORTED:
            result.rejections.append(entry)
        if rejects is not None:
            raw = rows[rej.index]
            raw = raw.raw if isinstance(raw, BadRow) else raw
            rejects.write(json.dumps({**entry, "record": raw}, default=str) + "\n")
    result.rejected += len(out.rejections)
    result.records_in += len(rows)
