"""The processor contract: Reject entries, state keyed by dirty_keys (dirty_symbols deprecated but
still honoured), identity declared by runtime.identity_fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from tradesignals_dagster.streaming.config import split_config
from tradesignals_dagster.streaming.errors import DeadLetterStopError
from tradesignals_dagster.streaming.processors.base import Reject, SourcePosition, is_stateful
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig
from tradesignals_dagster.streaming.records import identity_function
from tradesignals_dagster.streaming.state import StateStore
from tradesignals_dagster.streaming.transform import BatchTransformer


class EvenOnly:
    """Rejects odd values, passes even ones."""

    def process(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[SourcePosition] | None = None
    ) -> list[Any]:
        return [
            dict(r) if r["v"] % 2 == 0 else Reject(r, f"{r['v']} is odd", error_type="OddValue")
            for r in records
        ]


def test_rejects_become_dead_letters_and_the_batch_goes_on() -> None:
    records = [{"v": 0}, {"v": 1}, {"v": 2}, {"v": 3}]
    result = BatchTransformer(EvenOnly()).run(records)
    assert result.outputs == [{"v": 0}, {"v": 2}]
    assert [(r.index, r.stage, r.error, r.error_type) for r in result.rejections] == [
        (1, "process", "1 is odd", "OddValue"),
        (3, "process", "3 is odd", "OddValue"),
    ]


def test_a_reject_with_policy_stop_stops_the_batch() -> None:
    with pytest.raises(DeadLetterStopError, match="record 1 of the batch was rejected at process: 1 is odd"):
        BatchTransformer(EvenOnly(), policy="stop").run([{"v": 0}, {"v": 1}])


class OldStyle:
    """A stateful processor written against the previous contract (dirty_symbols)."""

    def process(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[SourcePosition] | None = None
    ) -> list[Any]:
        return []

    def dirty_symbols(self) -> set[str]:
        return {"A"}

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        return {"symbol": symbol}

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        pass


def test_dirty_symbols_still_works_with_a_deprecation_warning() -> None:
    proc = OldStyle()
    assert is_stateful(proc)
    with pytest.warns(DeprecationWarning, match="rename it dirty_keys"):
        keys, values = StateStore.changed(proc)  # type: ignore[arg-type]
    assert keys == [b"A"] and values == [b'{"symbol":"A"}']


def test_volume_bars_state_is_keyed_by_the_configured_field() -> None:
    agg = VolumeBarAggregator(VolumeBarsConfig(bar_volume=2), key_field="underlying")
    trade = {"symbol": "X1", "underlying": "AAPL", "timestamp": 1, "price": 10, "size": 1, "oi": 0}
    agg.process([trade, {**trade, "symbol": "X2"}])
    assert agg.dirty_keys() == {"AAPL"}
    with pytest.warns(DeprecationWarning):
        assert agg.dirty_symbols() == set()


def test_identity_is_declared_by_identity_fields() -> None:
    _, options = split_config({"runtime": {"identity_fields": ["symbol", "window_start", "revision"]}})
    ident = identity_function(
        ["symbol", "window_start", "revision", "trade_id"], None, options.identity_fields
    )
    assert (
        ident is not None
        and ident({"symbol": "A", "window_start": 1000, "revision": 0, "trade_id": "t"}) == "A:1000:0"
    )
    with pytest.raises(ValueError, match="identity_fields: the output schema has no field 'sequence'"):
        identity_function(["symbol"], None, ["symbol", "sequence"])
