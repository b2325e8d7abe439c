"""Subcommands beyond ``validate``: the local stack and plan/apply. Registered on import."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.control.apply import ControlPlane
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings


def add_parsers(sub: Any) -> None:
    """Add the parsers of the control-plane and runtime subcommands."""
    common = common_options()
    stack = sub.add_parser("stack", parents=[common], help="the local Kafka + schema registry")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("--kafka-port", type=int, help="broker port (default: a free one)")
    stack.add_argument(
        "--brokers",
        type=int,
        help="Kafka brokers: 1 (default) or 3 for a production-shaped cluster (RF 3, min ISR 2)",
    )
    stack.add_argument("--registry-port", type=int, help="schema registry port")
    stack.add_argument("--json", action="store_true", help="print the result as JSON")

    dev = sub.add_parser("dev", parents=[common], help="run everything locally with the Dagster UI")
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port on 127.0.0.1")
    dev.add_argument("--keep-running", action="store_true", help="leave the stack and pipelines up on exit")
    dev.add_argument("--no-ui", action="store_true", help="bring everything up, then exit")

    for name, text in (
        ("plan", "show what apply would change"),
        ("apply", "make topics and schemas match the registry"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--json", action="store_true", help="print the plan as JSON")
        p.add_argument("--topic", action="append", help="only this topic (repeatable)")
        p.add_argument("--subject", action="append", help="only this subject (repeatable)")
        p.add_argument("--table", action="append", help="only this ClickHouse table (repeatable)")
        p.add_argument(
            "--on-start",
            action="store_true",
            help="include resets of topics flagged reset_topic_on_start",
        )
        p.add_argument(
            "--delete-orphans",
            action="store_true",
            help="delete topics the registry no longer names",
        )
    from tradesignals_dagster.cli_pipelines import add_pipeline_parsers

    add_pipeline_parsers(sub)
    from tradesignals_dagster.cli_datasets import add_dataset_parsers

    add_dataset_parsers(sub)
    from tradesignals_dagster.cli_images import add_image_parsers

    add_image_parsers(sub)
    from tradesignals_dagster.cli_env import add_env_parsers

    add_env_parsers(sub)
    from tradesignals_dagster.cli_new import add_new_parsers

    add_new_parsers(sub)


def registry_app(args: argparse.Namespace, settings: Settings) -> StreamingApplication:
    """The validated application; problems raise a RegistryError (exit 2)."""
    return load_app(settings)


@command("dev")
def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals dev``: stack, registry applied, pipelines running, Dagster UI."""
    from tradesignals_dagster.devmode import run_dev

    return run_dev(settings, port=args.port, keep_running=args.keep_running, ui=not args.no_ui)


@command("stack")
def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals stack up|down|status``."""
    from tradesignals_dagster.stack.stack import stack_down, stack_status, stack_up

    if args.action == "up":
        info = stack_up(settings, args.kafka_port, args.registry_port, brokers=args.brokers)
        print(
            json.dumps(info, indent=2)
            if args.json
            else f"kafka: {info['bootstrap_servers']}\nschema registry: {info['schema_registry_url']}\n"
            f"clickhouse: {info.get('clickhouse_url')}\n"
            f"s3: {info.get('object_store_url')} at {(info.get('s3') or {}).get('endpoint')}\n"
            f"state: {settings.state_dir}"
        )
        return 0
    if args.action == "down":
        stopped = stack_down(settings)
        print(
            json.dumps(stopped)
            if args.json
            else "stopped: " + (", ".join(k for k, v in stopped.items() if v) or "nothing was running")
        )
        return 0
    status = stack_status(settings)
    status["replication"] = _replication(settings, status)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        state = "running" if status["running"] else "not running"
        print(
            f"stack {state}\n  kafka: {status['bootstrap_servers'] or 'not started'} "
            f"({'ready' if status['kafka'].get('ready') else 'down'})\n"
            f"  schema registry: {status['schema_registry_url'] or 'not started'} "
            f"({'ready' if status['schema_registry'].get('ready') else 'down'})\n"
            f"  clickhouse: {status['clickhouse_url'] or 'not started'} "
            f"({'ready' if status['clickhouse'].get('ready') else 'down'})\n"
            f"  s3: {status['s3']['endpoint'] or 'not started'} {status['object_store_url'] or ''} "
            f"({'ready' if status['s3'].get('ready') else 'down'})"
        )
        for node in status["kafka"].get("nodes", []):
            print(f"    broker {node['port']}: {'ready' if node['ready'] else 'down'} (log {node['log']})")
        for line in status["replication"]:
            print(f"  {line}")
    return 0 if status["running"] else 1


def _replication(settings: Settings, status: dict[str, Any]) -> list[str]:
    """Topics with partitions under-replicated, below min ISR or offline, when Kafka answers."""
    from tradesignals_dagster.kafka.admin import KafkaAdmin
    from tradesignals_dagster.kafka.replication import replication_health

    nodes = status["kafka"].get("nodes") or [status["kafka"]]
    if not any(n.get("ready") for n in nodes):
        return []
    try:
        health = replication_health(KafkaAdmin(settings.kafka_config(), timeout_s=5.0))
    except TradesignalsError as exc:
        return [f"replication: unknown ({exc})"]
    bad = [h.summary() for h in health.values() if h.under_replicated or not h.writable]
    if not bad:
        return [f"replication: {len(health)} topic(s), every partition fully in sync"]
    return [f"replication: {len(bad)} of {len(health)} topic(s) degraded", *(f"  {b}" for b in bad)]


def _plan(args: argparse.Namespace, settings: Settings) -> Any:
    app = registry_app(args, settings)
    control = ControlPlane.from_settings(settings)
    plan = control.plan(
        app,
        topics=set(args.topic) if args.topic else None,
        subjects=set(args.subject) if args.subject else None,
        on_start=args.on_start,
        delete_orphans=args.delete_orphans,
        tables=set(args.table) if args.table else None,
    )
    return control, plan


@command("plan")
def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals plan``: exit 0 when the plan can be applied, 1 when apply would refuse."""
    _, plan = _plan(args, settings)
    print(plan.to_json() if args.json else plan.render())
    return 1 if plan.blockers else 0


@command("apply")
def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals apply``: carry out the plan, or refuse all of it (exit 1)."""
    control, plan = _plan(args, settings)
    if not args.json:
        print(plan.render())
    result = control.apply(plan)
    if args.json:
        print(
            json.dumps(
                {
                    "applied": [c.kind + ":" + c.target for c in result.applied],
                    "schema_ids": result.schema_ids,
                },
                indent=2,
            )
        )
    elif result.applied:
        print(f"applied {len(result.applied)} change(s)")
    return 0
