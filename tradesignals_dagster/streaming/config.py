"""A pipeline's settings as the runtime reads them: the ``runtime`` section and the transform.

``pipelines/<id>/config.yaml`` holds the transform's settings (given to ``build`` as
``ctx.config``) and, optionally, a ``runtime`` section the runtime keeps for itself::

    bar_volume: 500
    runtime:
      batch_size: 10000        # messages per poll/commit cycle
      poll_timeout_s: 0.005    # longest wait for a batch to fill
      checkpoint_interval_s: 0.25  # state + offsets committed together this often
      dead_letter: dead_letter # or: stop (a rejected record stops the pipeline, uncommitted)
      key_field: symbol        # output message key (None: no key), the state key by convention
      identity_fields: [symbol, sequence]  # what identifies an output record (ts-id header)

Replays and tests layer ``--set key=value`` overrides on top (dotted keys reach into
sections: ``runtime.batch_size=500``).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tradesignals_dagster.streaming.confine import confined_file, pipeline_folder
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.processors.base import ProcessorFactory

RUNTIME_SECTION = "runtime"


class RuntimeOptions(BaseModel):
    """The ``runtime`` section of a pipeline's config.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(10_000, ge=1, description="Most messages handled per poll/commit cycle.")
    poll_timeout_s: float = Field(
        0.005,
        gt=0,
        le=10,
        description="Longest wait for a batch to fill; a busy input fills batches while the previous "
        "one is processed, so this only bounds the latency of a quiet one.",
    )
    checkpoint_interval_s: float = Field(
        0.25,
        ge=0,
        le=60,
        description="At-least-once: how often state snapshots are flushed and input offsets "
        "committed; a crash replays at most this much input (outputs repeat with the same identity).",
    )
    dead_letter: Literal["dead_letter", "stop"] = Field(
        "dead_letter",
        description="dead_letter: rejected records go to the DLQ topic and the pipeline goes on; "
        "stop: the first rejected record stops the pipeline without committing its batch.",
    )
    key_field: str | None = Field(
        "symbol",
        description="Output field used as the message key; also the field a stateful processor "
        "keys its state by (BuildContext.key_field).",
    )
    identity_fields: list[str] | None = Field(
        None,
        min_length=1,
        description="Output fields whose values, joined by ':', identify an output record (the ts-id "
        "header), e.g. [symbol, sequence]; a processor's record_id wins over it.",
    )
    stats_interval_s: float = Field(30.0, gt=0, description="How often throughput is logged.")
    session_timeout_ms: int = Field(15_000, ge=1_000, description="Consumer group session timeout.")
    linger_ms: float = Field(5.0, ge=0, description="Producer linger.ms.")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="Producer compression."
    )
    flush_timeout_s: float = Field(60.0, gt=0, description="Longest wait for acknowledgements.")
    instance_id: str | None = Field(
        None,
        description="This process's id among the pipeline's instances (static group membership, "
        "transactional.id); default $TRADESIGNALS_INSTANCE or '0'.",
    )


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["bar_volume=100", "runtime.batch_size=50"]`` as a dict; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise PipelineConfigError(f"override {item!r} is not key=value")
        out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
    return out


def apply_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` with ``overrides`` applied; dotted keys set nested values, string values are
    parsed as YAML scalars (``"100"`` becomes ``100``)."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}
    for key, value in (overrides or {}).items():
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else value
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                target[part] = nxt
            target = nxt
        target[parts[-1]] = value
    return out


def split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], RuntimeOptions]:
    """The transform's settings and the runtime options of a pipeline config."""
    transform = dict(config)
    section = transform.pop(RUNTIME_SECTION, None) or {}
    if not isinstance(section, Mapping):
        raise PipelineConfigError(f"config.yaml: {RUNTIME_SECTION} must be a mapping, got {section!r}")
    try:
        options = RuntimeOptions(**section)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PipelineConfigError(f"config.yaml: {RUNTIME_SECTION}: {problems}") from None
    return transform, options


def load_factory(pipelines_dir: Path, pipeline_key: str) -> ProcessorFactory:
    """The ``build`` function of ``pipelines/<id>/app.py`` (passthrough when there is no app.py).

    The module is imported, not run: app.py files call ``main`` under
    ``if __name__ == "__main__"``.
    """
    folder = pipeline_folder(pipelines_dir, pipeline_key)
    found = confined_file(folder / "app.py", folder, "app.py")
    if found is None:
        from tradesignals_dagster.streaming.processors import passthrough

        return passthrough.build
    name = f"tradesignals_pipeline_app_{pipeline_key}"
    app_py = found
    spec = importlib.util.spec_from_file_location(name, app_py)
    if spec is None or spec.loader is None:
        raise PipelineConfigError(f"cannot load {app_py}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PipelineConfigError(f"{app_py} failed to import: {type(exc).__name__}: {exc}") from exc
    build = getattr(module, "build", None)
    if not callable(build):
        raise PipelineConfigError(f"{app_py} must define build(ctx) returning the pipeline's processor")
    factory: ProcessorFactory = build
    return factory
