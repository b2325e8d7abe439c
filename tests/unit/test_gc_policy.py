"""The stream workers' garbage-collector policy: frozen start-up objects, rare young passes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from tradesignals_dagster.streaming import entry
from tradesignals_dagster.streaming.gc_policy import STREAMING_THRESHOLDS, tune_for_streaming


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Node:
    def __init__(self) -> None:
        self.other: Any = None


def test_tuning_freezes_start_up_objects_and_still_collects_cycles(restore_gc: None) -> None:
    before = gc.get_freeze_count()
    tune_for_streaming()
    assert gc.get_threshold() == STREAMING_THRESHOLDS
    assert gc.get_freeze_count() > before  # the modules and objects built so far are frozen
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle made after the freeze is still garbage the collector frees
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is None


def test_the_pipeline_process_entry_point_asks_for_the_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run_main(*args: Any, **kwargs: Any) -> int:
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(entry, "run_main", fake_run_main)
    with pytest.raises(SystemExit) as exited:
        entry.main(pipeline_key="p")
    assert exited.value.code == 0 and calls == [{"pipeline_key": "p", "tune_gc": True}]
