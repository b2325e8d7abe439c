"""``tradesignals new pipeline <id>``: scaffold a pipeline (the work is in :mod:`.scaffold`)."""

from __future__ import annotations

import argparse
from typing import Any

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.scaffold import TEMPLATES, PipelineSpec, new_pipeline
from tradesignals_dagster.settings import Settings


def add_new_parsers(sub: Any) -> None:
    """Add ``new pipeline`` to the CLI's subparsers."""
    p = sub.add_parser("new", help="scaffold a new pipeline (files, registry entries, a test)")
    kinds = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = kinds.add_parser("pipeline", parents=[common_options()], help="a pipeline from one topic to another")
    q.add_argument("pipeline_id", metavar="ID", help="the new pipeline's id (lower case, digits, _)")
    q.add_argument("--input-topic", required=True, help="a topic of the registry to read")
    q.add_argument(
        "--output-topic", required=True, help="the topic to write (added with a schema stub if new)"
    )
    q.add_argument("--template", choices=TEMPLATES, default="passthrough", help="what app.py starts as")
    q.add_argument("--key-field", default="symbol", help="input field the state and message key use")
    q.add_argument("--time-field", default="timestamp", help="window template: the event-time field")
    q.add_argument("--window-ms", type=int, default=1000, help="window template: window size in ms")


@command("new")
def cmd_new(args: argparse.Namespace, settings: Settings) -> int:
    """Scaffold, validate, and say what was written."""
    spec = PipelineSpec(
        args.pipeline_id,
        args.input_topic,
        args.output_topic,
        args.template,
        args.key_field,
        args.time_field,
        args.window_ms,
    )
    result = new_pipeline(settings, spec)
    print(f"created pipeline {result.pipeline}:")
    for path in result.created:
        print(f"  + {path}")
    for path in result.changed:
        print(f"  ~ {path}")
    test = settings.pipelines_dir / spec.pipeline_id / f"test_{spec.pipeline_id}.py"
    print(f"registry valid. Next: pytest {test}")
    return 0
