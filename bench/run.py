"""``make bench``: run every benchmark group, save JSON under bench/results/, print the table."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench.common import Result, save, table

GROUPS = [
    "registry",
    "definitions",
    "streaming",
    "time_bars",
    "clickhouse_endpoint",
    "clickhouse_sink",
    "dataset_export",
    "models",
    "docker",
]


def main() -> int:
    """Run the groups named on the command line (default: all)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("groups", nargs="*", default=GROUPS)
    args = parser.parse_args()
    everything: list[Result] = []
    for group in args.groups:
        module = importlib.import_module(f"bench.bench_{group}")
        print(f"== {group}", file=sys.stderr, flush=True)
        results: list[Result] = module.run()
        save(group, results)
        everything.extend(results)
        print(table(results), flush=True)
    print()
    print(table(everything))
    return 0


if __name__ == "__main__":
    sys.exit(main())
