"""Loading the Dagster definitions for a generated registry of 500 pipelines (goal < 10 s)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result
from bench.gen_registry import generate

SCRIPT = """
import time, sys
from pathlib import Path
started = time.perf_counter()
from tradesignals_dagster.defs.build import build_definitions
from tradesignals_dagster.settings import Settings
defs = build_definitions(Settings(registry=Path(sys.argv[1]),
                                  state_dir=Path(sys.argv[1]) / ".state"))
graph = defs.resolve_asset_graph()
n = len(list(graph.get_all_asset_keys()))
print(n, time.perf_counter() - started)
"""


def run() -> list[Result]:
    """Measure a cold load (fresh interpreter, imports included) of the 500-pipeline graph."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), topics=1000, pipelines=500)
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", SCRIPT, tmp], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    assets, inside = out.stdout.split()
    return [
        Result(
            "load definitions: 500 pipelines, 1,000 topics",
            "< 10 s",
            wall,
            "s",
            wall < 10.0,
            f"{assets} assets; fresh process, imports included ({float(inside):.2f} s in-process)",
        )
    ]
