"""Dead-letter routing decisions of the batch transformer (no Kafka)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from flagship_avro import OPTION_TRADES

from tradesignals_dagster.streaming.errors import DeadLetterStopError, ProcessorError
from tradesignals_dagster.streaming.processors.passthrough import PassthroughProcessor
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.transform import BatchTransformer, Rejection

SCHEMA = RecordSchema(OPTION_TRADES)


def tr(n: int, size: int = 10, symbol: str = "S") -> dict[str, Any]:
    return {
        "trade_id": f"t{n}",
        "symbol": symbol,
        "underlying": "",
        "timestamp": n,
        "price": 100 + n,
        "size": size,
        "oi": 1,
    }


def test_clean_batch_goes_straight_through() -> None:
    records = [tr(i) for i in range(5)]
    result = BatchTransformer(PassthroughProcessor(), SCHEMA).run(records)
    assert result.outputs == records and result.rejections == []


def test_decode_failures_are_kept_and_skipped() -> None:
    records = [tr(0), None, tr(2)]
    pre = [Rejection(1, "decode", "bad bytes", "DecodeError")]
    result = BatchTransformer(PassthroughProcessor(), SCHEMA).run(records, None, pre)
    assert result.outputs == [tr(0), tr(2)]
    assert result.rejections == pre


def test_length_rules_reject_records() -> None:
    records = [tr(0), tr(1, symbol=""), tr(2, symbol="X" * 33), {**tr(3), "trade_id": "x" * 64}]
    result = BatchTransformer(PassthroughProcessor(), SCHEMA).run(records)
    assert [r.index for r in result.rejections] == [1, 2]
    assert all(r.stage == "validate" for r in result.rejections)
    assert "min_length 1" in result.rejections[0].error and "max_length 32" in result.rejections[1].error
    assert [o["trade_id"] for o in result.outputs] == ["t0", "x" * 64]  # 64 is within max_length


def test_processor_rejections_resume_after_the_bad_record_with_positions() -> None:
    agg = VolumeBarAggregator(VolumeBarsConfig(bar_volume=20))
    records = [tr(0), tr(1, size=-1), tr(2), tr(3), tr(4, size=-3), tr(5)]
    positions = [(0, 100 + i) for i in range(6)]
    result = BatchTransformer(agg, SCHEMA).run(records, positions)
    assert [(r.index, r.stage, r.error_type) for r in result.rejections] == [
        (1, "process", "InvalidTradeError"),
        (4, "process", "InvalidTradeError"),
    ]
    assert [(b["sequence"], b["volume"], b["trade_count"]) for b in result.outputs] == [
        (0, 20, 2),
        (1, 20, 2),
    ]
    snapshot = agg.snapshot("S")
    assert snapshot is not None and snapshot["positions"] == [[0, 105]]


def test_processor_rejections_without_positions_use_identity() -> None:
    agg = VolumeBarAggregator(VolumeBarsConfig(bar_volume=20))
    records = [tr(0), None, tr(2, size=-1), tr(3)]
    pre = [Rejection(1, "decode", "x", "DecodeError")]
    result = BatchTransformer(agg, SCHEMA).run(records, None, pre)
    assert [(r.index, r.stage) for r in result.rejections] == [(1, "decode"), (2, "process")]
    assert len(result.outputs) == 1 and result.outputs[0]["trade_count"] == 2


def test_stop_policy_raises_at_the_first_rejection() -> None:
    with pytest.raises(DeadLetterStopError, match="validate"):
        BatchTransformer(PassthroughProcessor(), SCHEMA, "stop").run([tr(0), tr(1, symbol="")])
    agg = VolumeBarAggregator(VolumeBarsConfig(bar_volume=20))
    with pytest.raises(DeadLetterStopError, match="process"):
        BatchTransformer(agg, SCHEMA, "stop").run([tr(0), tr(1, size=-1)])


class Broken:
    def process(self, records: Sequence[Mapping[str, Any]], positions: Any = None) -> list[dict[str, Any]]:
        raise RuntimeError("bug")


def test_an_error_naming_no_record_stops_the_pipeline() -> None:
    with pytest.raises(ProcessorError, match="without naming a bad record: RuntimeError: bug"):
        BatchTransformer(Broken(), SCHEMA).run([tr(0)])
