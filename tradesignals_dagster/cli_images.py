"""``tradesignals images build [<id>...]`` and ``tradesignals compose``: pipeline containers.

``images build`` builds each pipeline's image offline and tagged by content (see
:mod:`tradesignals_dagster.deploy.images`); an unchanged pipeline is reported ``up to date`` and
not rebuilt. ``compose`` prints a Docker Compose file for the registry's pipelines
(:mod:`tradesignals_dagster.deploy.compose`); ``compose --check FILE`` exits 1 when a committed
file no longer matches the registry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.deploy.errors import UnknownPipelineError
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings


def add_image_parsers(sub: Any) -> None:
    """Add ``images`` (with ``build``) and ``compose`` to the CLI's subparsers."""
    common = common_options()
    images = sub.add_parser("images", help="build pipeline images (offline, tagged by content)")
    actions = images.add_subparsers(dest="images_action", metavar="ACTION", required=True)
    p = actions.add_parser("build", parents=[common], help="build images of pipelines (default: all)")
    p.add_argument("ids", nargs="*", metavar="ID", help="pipeline ids")
    p.add_argument("--quiet", action="store_true", help="no build output, only the result lines")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p = actions.add_parser("list", parents=[common], help="the image each pipeline should run (no build)")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("compose", parents=[common], help="print a docker-compose.yaml for the pipelines")
    p.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from what is generated")


def _chosen(ids: list[str], known: list[str]) -> list[str]:
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UnknownPipelineError(
            f"no pipeline {', '.join(repr(u) for u in unknown)} in the registry; "
            f"known: {', '.join(known) or 'none'}"
        )
    return ids or known


@command("images")
def cmd_images(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals images build|list``."""
    from tradesignals_dagster.deploy.images import build_pipeline_image, pipeline_image_ref

    app = load_app(settings)
    keys = _chosen(getattr(args, "ids", []), sorted(app.pipelines))
    if args.images_action == "list":
        refs = {k: pipeline_image_ref(app, k, settings) for k in keys}
        print(json.dumps(refs, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in refs.items()))
        return 0
    from tradesignals_dagster.deploy.docker import docker_client

    client = docker_client()
    quiet = args.quiet or args.json

    def progress(line: str) -> None:
        if not quiet:
            print(f"  {line}", file=sys.stderr, flush=True)

    started = time.monotonic()
    results = []
    for key in keys:
        result = build_pipeline_image(client, app, key, settings, progress)
        results.append({"id": key, **result.__dict__})
        if not args.json:
            how = f"built in {result.seconds:.1f}s" if result.built else "up to date"
            print(f"{key}: {result.ref} ({how})", flush=True)
    if args.json:
        print(json.dumps({"images": results, "seconds": round(time.monotonic() - started, 3)}, indent=2))
    return 0


@command("compose")
def cmd_compose(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals compose [--env ENV] [--check FILE]``."""
    from tradesignals_dagster.deploy.compose import compose_diff, render_compose

    app = load_app(settings)
    text = render_compose(app, settings, env=args.env)
    if args.check is None:
        sys.stdout.write(text)
        return 0
    problems = compose_diff(args.check, text)
    if problems:
        print(f"{args.check} does not match the registry (regenerate: tradesignals compose > {args.check}):")
        for line in problems:
            print(f"  {line}")
        return 1
    print(f"{args.check} matches the registry")
    return 0
