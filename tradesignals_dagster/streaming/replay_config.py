"""A replay's pipeline settings, with each problem blamed on where it came from.

A replay layers ``--set key=value`` overrides on ``pipelines/<id>/config.yaml``. When the
result is refused, the message must point at the override the user just typed, not at a
config.yaml that is fine: ``--set bar_volume=-1: bar_volume: Input should be greater than
0``. Problems the file has on its own are still reported against the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tradesignals_dagster.registry.models import StreamingPipeline
from tradesignals_dagster.streaming.config import (
    RUNTIME_SECTION,
    RuntimeOptions,
    apply_overrides,
    split_config,
)
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.processors.base import BuildContext, Processor, ProcessorFactory


def describe_override(key: str, value: Any) -> str:
    """``--set key=value`` as the user would have typed it."""
    shown = "" if value is None else value
    if isinstance(shown, bool):
        shown = str(shown).lower()
    return f"--set {key}={shown}"


def _blamed(overrides: Mapping[str, Any], loc: str) -> list[str]:
    """The overrides that set ``loc`` (a dotted path), a section above it or a key below it."""
    return [
        describe_override(key, value)
        for key, value in overrides.items()
        if key == loc or loc.startswith(f"{key}.") or key.startswith(f"{loc}.")
    ]


def replay_settings(
    pipe: StreamingPipeline, overrides: Mapping[str, Any] | None
) -> tuple[dict[str, Any], RuntimeOptions]:
    """The transform settings and runtime options of ``pipe`` with ``overrides`` applied.

    A ``runtime`` section that config.yaml gets right but an override breaks is reported as
    ``--set runtime.x=...: ...``; one that is wrong in config.yaml itself is reported as before.
    """
    try:
        return split_config(apply_overrides(pipe.config, overrides))
    except PipelineConfigError as exc:
        if not overrides:
            raise
        split_config(apply_overrides(pipe.config, None))  # config.yaml's own problem: its message
        culprits = _blamed(overrides, RUNTIME_SECTION) or [
            describe_override(k, v) for k, v in overrides.items()
        ]
        reason = str(exc).removeprefix("config.yaml: ")
        raise PipelineConfigError(f"{', '.join(culprits)}: {reason}") from None


def build_replay_processor(
    factory: ProcessorFactory, ctx: BuildContext, overrides: Mapping[str, Any] | None
) -> Processor:
    """``factory(ctx)``; a settings validation error names, for each problem, the ``--set``
    that caused it or else ``pipelines/<id>/config.yaml``."""
    try:
        return factory(ctx)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(map(str, error["loc"]))
            culprits = _blamed(overrides or {}, loc) if loc else []
            source = ", ".join(culprits) or f"pipelines/{ctx.pipeline.key}/config.yaml"
            problems.append(f"{source}: {loc or '(root)'}: {error['msg']}")
        raise PipelineConfigError(
            f"the settings do not fit pipeline {ctx.pipeline.key}'s processor: {'; '.join(problems)}"
        ) from None
