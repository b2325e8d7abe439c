"""Registry validation speed: the flagship registry via the CLI, and a 1,000-topic registry."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result
from bench.gen_registry import generate
from tradesignals_dagster.registry import load_registry

ROOT = Path(__file__).parent.parent


def run() -> list[Result]:
    """Measure and return the registry benchmarks."""
    results = []
    cli = str(Path(sys.executable).parent / "tradesignals")
    walls = []
    for _ in range(5):
        started = time.perf_counter()
        proc = subprocess.run([cli, "validate"], cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"validate failed on registry/: {proc.stdout}{proc.stderr}")
    wall = statistics.median(walls)
    results.append(
        Result(
            "tradesignals validate registry/ (whole command)",
            "< 1 s",
            wall,
            "s",
            wall < 1.0,
            "median of 5 runs, process start included",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), topics=1000, pipelines=500)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            res = load_registry(tmp)
            times.append(time.perf_counter() - started)
            if res.errors:
                raise SystemExit(f"generated registry invalid: {res.errors[:3]}")
        best = statistics.median(times)
    results.append(
        Result(
            "validate 1,000 topics + 500 pipelines",
            "< 2 s",
            best,
            "s",
            best < 2.0,
            "median of 5 loads, in process",
        )
    )
    return results
