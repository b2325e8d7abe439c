"""``tradesignals pipelines start|stop|restart|status|logs|replay``: pipelines on this machine.

Table sinks are workloads of the same runtime and are listed, started, stopped and logged here too,
as ``sink.<table>`` (:mod:`tradesignals_dagster.deploy.workloads`): an operator asks "what runs
here, is it healthy" once, not once per kind.

The commands call the same pieces as the Dagster assets and sensors: the registry loader,
:func:`~tradesignals_dagster.deploy.desired.desired_state` and the runtime the settings choose
(:class:`~tradesignals_dagster.deploy.process.ProcessRuntime` by default). To add an action,
add its parser to the subparsers object :func:`add_pipeline_parsers` returns (``dest`` is
``pipelines_action``) and register its handler with :func:`pipeline_action`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.deploy.errors import DeployError, UnknownPipelineError
from tradesignals_dagster.deploy.health import Health
from tradesignals_dagster.deploy.runtime import PipelineRuntime, RuntimeStatus
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.registry.models import StreamingApplication
from tradesignals_dagster.settings import Settings

ActionHandler = Callable[[argparse.Namespace, Settings], int]
_ACTIONS: dict[str, ActionHandler] = {}


def pipeline_action(name: str) -> Callable[[ActionHandler], ActionHandler]:
    """Register the handler of ``tradesignals pipelines <name>``."""

    def wrap(fn: ActionHandler) -> ActionHandler:
        _ACTIONS[name] = fn
        return fn

    return wrap


def _set_pair(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as a YAML scalar (``10`` is an int, ``true`` a bool)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got '{text}'")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"cannot read the value of '{key}': {exc}") from exc
    if isinstance(parsed, dict | list):
        raise argparse.ArgumentTypeError(f"the value of '{key}' must be a scalar, got '{value}'")
    return key.strip(), parsed


def add_pipeline_parsers(sub: Any) -> Any:
    """Add ``pipelines`` and its actions to ``sub``; return the actions' subparsers object."""
    pipelines = sub.add_parser("pipelines", help="run pipelines as supervised local processes")
    actions = pipelines.add_subparsers(dest="pipelines_action", metavar="ACTION", required=True)
    common = common_options()

    p = actions.add_parser("start", parents=[common], help="start pipelines (default: all in the registry)")
    p.add_argument("ids", nargs="*", metavar="ID", help="pipeline ids")
    p.add_argument(
        "--no-apply",
        action="store_true",
        help="do not create/fix their topics and schemas first (they are managed elsewhere)",
    )
    p = actions.add_parser("stop", parents=[common], help="stop pipelines (default: every known one)")
    p.add_argument("ids", nargs="*", metavar="ID", help="pipeline ids")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    p = actions.add_parser("restart", parents=[common], help="restart pipelines even if up to date")
    p.add_argument("ids", nargs="+", metavar="ID", help="pipeline ids")
    p.add_argument("--no-apply", action="store_true", help="do not create/fix their topics and schemas first")
    p = actions.add_parser(
        "status", parents=[common], help="state of every pipeline; exit 1 if any crashed or stalled"
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="only these pipelines")
    p.add_argument("--json", action="store_true", help="print the statuses as JSON")
    p = actions.add_parser("logs", parents=[common], help="the end of a pipeline's output")
    p.add_argument("id", metavar="ID", help="pipeline id")
    p.add_argument("-n", "--lines", type=int, default=100, help="how many lines (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p = actions.add_parser("replay", parents=[common], help="run a pipeline's transform over a file")
    p.add_argument("id", metavar="ID", help="pipeline id")
    p.add_argument("--input", type=Path, required=True, help="input records (Parquet, CSV or JSONL)")
    p.add_argument("--output", type=Path, required=True, help="where to write the output records")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_set_pair,
        default=[],
        metavar="KEY=VALUE",
        help="override a config.yaml setting (repeatable; values read as YAML scalars)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    return actions


@command("pipelines")
def cmd_pipelines(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals pipelines <action>``: dispatch to the action's handler."""
    return _ACTIONS[args.pipelines_action](args, settings)


def _registry(args: argparse.Namespace, settings: Settings) -> tuple[StreamingApplication, Settings]:
    """The validated registry, and the settings with the pipelines directory it was checked with."""
    return load_app(settings), settings


def _runtime(settings: Settings) -> PipelineRuntime:
    from tradesignals_dagster.deploy.operations import runtime_for

    return runtime_for(settings)


def _chosen(app: StreamingApplication, ids: list[str]) -> list[str]:
    from tradesignals_dagster.deploy.workloads import is_known, workload_keys

    unknown = [i for i in ids if not is_known(app, i)]
    if unknown:
        raise UnknownPipelineError(
            f"no pipeline or sink {', '.join(repr(u) for u in unknown)} in the registry; "
            f"known: {', '.join(workload_keys(app)) or 'none'}"
        )
    return ids or workload_keys(app)


def _describe(status: RuntimeStatus) -> str:
    if status.runtime == "docker":
        replicas = status.extra.get("replicas")
        return f"container {status.runtime_id or '-'}, replicas {replicas}, version {status.version}"
    pid = status.extra.get("child_pid") or status.runtime_id or "-"
    return f"pid {pid}, version {status.version}"


def _deploy_all(args: argparse.Namespace, settings: Settings, force: bool) -> int:
    from tradesignals_dagster.control.apply import ControlPlane
    from tradesignals_dagster.deploy.desired import desired_state
    from tradesignals_dagster.deploy.workloads import deploy_workload

    app, settings = _registry(args, settings)
    runtime = _runtime(settings)
    failed = 0
    for key in _chosen(app, args.ids):
        try:
            if args.no_apply:
                status = runtime.deploy(desired_state(app, key, settings), force=force)
            else:
                _, status = deploy_workload(
                    app, key, settings, ControlPlane.from_settings(settings), runtime, force
                )
        except DeployError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        action = status.extra.get("action", "deployed")
        print(f"{key}: {'already running' if action == 'unchanged' else action} ({_describe(status)})")
    return 1 if failed else 0


@pipeline_action("start")
def act_start(args: argparse.Namespace, settings: Settings) -> int:
    """Start pipelines that are not running; restart those whose version changed."""
    return _deploy_all(args, settings, force=False)


@pipeline_action("restart")
def act_restart(args: argparse.Namespace, settings: Settings) -> int:
    """Restart pipelines whatever their version."""
    return _deploy_all(args, settings, force=True)


@pipeline_action("stop")
def act_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop pipelines; they then read *stopped* (not restarted by the health sensor)."""
    runtime = _runtime(settings)
    keys = args.ids or [s.key for s in runtime.list()]
    if not keys:
        print("no pipelines have been started here")
    for key in keys:
        was = runtime.stop(key, timeout=args.timeout)
        print(f"{key}: {'stopped' if was else 'was not running'}")
    return 0


def _uptime(seconds: float) -> str:
    secs = int(seconds)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{mins:02d}m"
    return f"{mins}m{secs:02d}s"


@pipeline_action("status")
def act_status(args: argparse.Namespace, settings: Settings) -> int:
    """A table (or JSON) of every pipeline in the registry or known to the runtime."""
    from tradesignals_dagster.deploy.desired import desired_state

    desired: dict[str, str] = {}
    app: StreamingApplication | None = None
    try:
        app, settings = _registry(args, settings)
        desired = {k: desired_state(app, k, settings).version for k in _chosen(app, [])}
    except TradesignalsError as exc:
        print(f"warning: registry not read, showing the runtime's pipelines only: {exc}", file=sys.stderr)
    runtime = _runtime(settings)
    known = {s.key: s for s in runtime.list()}
    keys = args.ids or sorted(set(known) | set(desired))
    statuses = [known.get(k) or runtime.status(k) for k in keys]
    health = _health(app, settings, runtime, statuses)
    now = time.time()
    rows = []
    for s in statuses:
        want = desired.get(s.key)
        rows.append(
            {
                "id": s.key,
                "state": health[s.key].state if s.key in health else s.state,
                "pid": int(s.extra["child_pid"]) if s.running and s.extra.get("child_pid") else None,
                "supervisor_pid": int(s.runtime_id) if s.runtime_id and s.runtime_id.isdigit() else None,
                "container": s.runtime_id if s.runtime == "docker" else None,
                "image": s.extra.get("image"),
                "replicas": s.extra.get("replicas"),
                "version": s.version,
                "desired_version": want,
                "outdated": bool(s.running and want and want != s.version),
                "started_at": s.started_at,
                "uptime_s": round(now - s.started_at, 1) if s.running and s.started_at else None,
                "restarts": s.restarts,
                "exit_code": s.exit_code,
                "crashes_last_hour": int(s.extra.get("crashes_last_hour") or 0),
                "detail": health[s.key].reason if s.key in health and health[s.key].stalled else s.detail,
                "log": s.extra.get("log"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 1 if any(r["state"] in ("crashed", "stalled") for r in rows) else 0


def _health(
    app: StreamingApplication | None,
    settings: Settings,
    runtime: PipelineRuntime,
    statuses: list[RuntimeStatus],
) -> dict[str, Health]:
    """The health of every running pipeline of the registry (stalled or running)."""
    from tradesignals_dagster.control.apply import ControlPlane
    from tradesignals_dagster.deploy.health import assess
    from tradesignals_dagster.deploy.workloads import is_known, workload_lag

    running = [s for s in statuses if s.running and app is not None and is_known(app, s.key)]
    if not running or app is None:
        return {}
    control = ControlPlane.from_settings(settings)
    out: dict[str, Health] = {}
    for status in running:
        lag = None
        with contextlib.suppress(TradesignalsError):
            lag = workload_lag(control, app, status.key)
        metrics = runtime.metrics(status.key)
        out[status.key] = assess(status, lag, metrics, settings.stall_after_s)
    return out


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = ["PIPELINE", "STATE", "PID", "VERSION", "UPTIME", "RESTARTS"]
    table = [header]
    for r in rows:
        state = r["state"] + (f" ({r['exit_code']})" if r["state"] == "crashed" else "")
        version = (r["version"] or "-") + (" (outdated)" if r["outdated"] else "")
        uptime = _uptime(r["uptime_s"]) if r["uptime_s"] is not None else "-"
        pid = str(r["pid"] or r["supervisor_pid"] or r.get("container") or "-")
        table.append([r["id"], state, pid, version, uptime, str(r["restarts"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("(no pipelines)")


@pipeline_action("logs")
def act_logs(args: argparse.Namespace, settings: Settings) -> int:
    """Print the end of a pipeline's output, then (``-f``) what it prints next."""
    runtime = _runtime(settings)
    text = runtime.logs(args.id, max(args.lines, 0))
    if not text and runtime.status(args.id).state == "missing":
        raise UnknownPipelineError(f"pipeline '{args.id}' has never been started here")
    if text:
        print(text, flush=True)
    if args.follow:
        for chunk in runtime.follow_logs(args.id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    return 0


@pipeline_action("replay")
def act_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Run the pipeline's transform over ``--input`` and write ``--output``, without Kafka."""
    from tradesignals_dagster.streaming.replay import replay_file

    app, _ = _registry(args, settings)
    key = _chosen(app, [args.id])[0]
    result = replay_file(
        app, key, args.input, args.output, dict(args.overrides), pipelines_dir=settings.pipelines_dir
    )
    counts = result.as_dict()
    if args.json:
        print(json.dumps(counts, indent=2, default=str))
    else:
        print(
            f"{key}: {result.records_in} record(s) in, {result.records_out} out, "
            f"{result.rejected} rejected -> {args.output}"
        )
        for rejection in result.rejections:
            print(f"  rejected: {rejection}", file=sys.stderr)
    return 0
