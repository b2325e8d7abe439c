"""The ``tradesignals`` command: the same operations as the Dagster assets, from a terminal or CI.

Every subcommand calls the functions the assets and sensors call; this module only parses
arguments, prints results and maps errors to exit codes (0 ok, 1 failed, 2 invalid input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tradesignals_dagster import __version__
from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.registry.application import check_every_environment
from tradesignals_dagster.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]
_COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``tradesignals <name>``."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = fn
        return fn

    return wrap


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tradesignals",
        description="Keep Kafka topics, Avro schemas and streaming pipelines in line with the YAML registry.",
    )
    parser.add_argument("--version", action="version", version=f"tradesignals {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        parents=[common_options()],
        help="check the registry; exit 2 listing every problem",
    )
    p.add_argument("--json", action="store_true", help="print problems as JSON")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")

    from tradesignals_dagster import cli_commands

    cli_commands.add_parsers(sub)
    return parser


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes: where the registry, pipelines and state live."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", type=Path, help="registry directory (default: registry/)")
    common.add_argument(
        "--pipelines",
        type=Path,
        help="pipelines directory (default: <registry>/pipelines if present, else pipelines/ beside it)",
    )
    common.add_argument("--state-dir", type=Path, help="state directory (default: .state/)")
    common.add_argument(
        "--env",
        help="environment overlay (registry/environments/<env>.yaml; default: TRADESIGNALS_ENV, "
        "else the registry's own environment)",
    )
    return common


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        registry=args.registry,
        pipelines_dir=args.pipelines,
        state_dir=args.state_dir,
        env=getattr(args, "env", None),
    )


@command("validate")
def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    """``tradesignals validate``: every problem at once, file:line path: reason."""
    started = time.perf_counter()
    result, envs = check_every_environment(settings)
    elapsed = time.perf_counter() - started
    failing = result.errors + (result.warnings if args.strict else [])
    if args.json:
        print(
            json.dumps(
                {
                    "valid": not failing,
                    "problems": [p.__dict__ for p in result.problems],
                    "seconds": round(elapsed, 4),
                },
                indent=2,
            )
        )
    else:
        for problem in result.problems:
            print(problem.render())
        if failing:
            print(
                f"{len(result.errors)} error(s), {len(result.warnings)} warning(s) in {settings.registry}",
                file=sys.stderr,
            )
        else:
            app = result.app
            assert app is not None
            print(
                f"{settings.registry}: valid - {len(app.topics)} topic(s), "
                f"{len(app.schemas)} schema(s), {len(app.pipelines)} pipeline(s), "
                f"{len(result.warnings)} warning(s) [{elapsed * 1000:.0f} ms]"
                + (f"; environments checked: {', '.join(envs)}" if envs else "")
            )
    return 2 if failing else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tradesignals`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        handler = _COMMANDS[args.command]
        return handler(args, settings)
    except TradesignalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `tradesignals pipelines logs x | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # the last line of defence: a bug, reported without a traceback
        if os.environ.get("TRADESIGNALS_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error (this is a bug; rerun with TRADESIGNALS_DEBUG=1 for details): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    # `python -m tradesignals_dagster.cli`: run the imported module, where subcommands register
    from tradesignals_dagster.cli import main as _main

    sys.exit(_main())
