"""``tradesignals diff-env A B``: what differs between two environments of one registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings


def add_env_parsers(sub: Any) -> None:
    """Add ``diff-env`` to the CLI's subparsers."""
    p = sub.add_parser(
        "diff-env", parents=[common_options()], help="show what differs between two environments"
    )
    p.add_argument("env_a", metavar="A", help="an environment (environments/<A>.yaml or the registry's own)")
    p.add_argument("env_b", metavar="B", help="the environment to compare it with")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")


def environment_diff(a: StreamingApplication, b: StreamingApplication) -> list[dict[str, Any]]:
    """Every leaf value that differs between two loads of one registry, by YAML-like path."""
    left, right = _flat(_sections(a)), _flat(_sections(b))
    return [
        {"path": path, "a": left.get(path), "b": right.get(path)}
        for path in sorted(set(left) | set(right))
        if left.get(path) != right.get(path)
    ]


def _sections(app: StreamingApplication) -> dict[str, Any]:
    dump = app.model_dump(mode="json")
    return {"Topics": dump["topics"], "Pipelines": dump["pipelines"], "Tables": dump.get("tables", {})}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flat(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


@command("diff-env")
def cmd_diff_env(args: argparse.Namespace, settings: Settings) -> int:
    """Load the registry in both environments (each fully validated) and list the differences."""
    a = load_app(settings.model_copy(update={"env": args.env_a}))
    b = load_app(settings.model_copy(update={"env": args.env_b}))
    diff = environment_diff(a, b)
    if args.json:
        print(json.dumps(diff, indent=2))
    elif not diff:
        print(f"{args.env_a} and {args.env_b} are the same")
    else:
        print(f"{len(diff)} difference(s), {args.env_a} -> {args.env_b}:")
        for row in diff:
            print(f"  {row['path']}: {json.dumps(row['a'])} -> {json.dumps(row['b'])}")
    return 0
