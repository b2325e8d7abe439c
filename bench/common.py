"""What every benchmark reports: a goal and the figure measured beside it."""

from __future__ import annotations

import gc
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tradesignals_dagster.streaming.gc_policy import tune_for_streaming

RESULTS = Path(__file__).parent / "results"


@dataclass
class Result:
    """One measured figure against its goal."""

    name: str
    goal: str
    measured: float
    unit: str
    met: bool
    detail: str = ""

    def row(self) -> str:
        """A Markdown table row."""
        mark = "met" if self.met else "NOT met"
        figure = f"{self.measured:,.3f} {self.unit}"
        return f"| {self.name} | {self.goal} | {figure} | {mark} | {self.detail} |"


def save(group: str, results: list[Result]) -> None:
    """Write ``bench/results/<group>.json`` with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "group": group,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "results": [asdict(r) for r in results],
    }
    (RESULTS / f"{group}.json").write_text(json.dumps(payload, indent=2) + "\n")


def table(results: list[Result]) -> str:
    """Results as the Markdown table bench/README.md shows."""
    head = "| benchmark | goal | measured | status | detail |\n| --- | --- | --- | --- | --- |"
    return "\n".join([head, *(r.row() for r in results)])


@contextmanager
def product_gc() -> Iterator[None]:
    """The collector policy the pipeline and sink processes run with, for the product's in-process
    runs only: a contender measured afterwards (Quix Streams) gets CPython's defaults back."""
    thresholds = gc.get_threshold()
    tune_for_streaming()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
