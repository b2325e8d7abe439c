"""`tradesignals pipelines replay` runs the real volume-bars transform over a file, no Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradesignals_dagster.cli import main

ROOT = Path(__file__).parent.parent.parent


def test_replay_computes_bars_from_a_jsonl_file_with_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trades = [
        {
            "trade_id": "1",
            "symbol": "A",
            "underlying": "X",
            "timestamp": 1000,
            "price": "1.5000",
            "size": 6,
            "oi": 1,
        },
        {
            "trade_id": "2",
            "symbol": "B",
            "underlying": "X",
            "timestamp": 1001,
            "price": "9.0000",
            "size": 3,
            "oi": 2,
        },
        {
            "trade_id": "3",
            "symbol": "A",
            "underlying": "X",
            "timestamp": 1002,
            "price": "2.5000",
            "size": 4,
            "oi": 3,
        },
        {
            "trade_id": "4",
            "symbol": "A",
            "underlying": "X",
            "timestamp": 1003,
            "price": "2.0000",
            "size": 1,
            "oi": 4,
        },
    ]
    source = tmp_path / "trades.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in trades))
    out = tmp_path / "bars.jsonl"

    code = main(
        [
            "pipelines",
            "replay",
            "option_trade_volume_bars",
            "--input",
            str(source),
            "--output",
            str(out),
            "--set",
            "bar_volume=10",
            "--registry",
            str(ROOT / "registry"),
            "--pipelines",
            str(ROOT / "pipelines"),
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )

    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "4 record(s) in, 1 out, 0 rejected" in printed
    bars = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(bars) == 1
    bar = bars[0]
    assert (bar["symbol"], bar["sequence"], bar["volume"], bar["trade_count"]) == ("A", 0, 10, 2)
    assert (bar["start_timestamp"], bar["timestamp"]) == (1000, 1002)
    assert float(bar["open"]) == 1.5 and float(bar["close"]) == 2.5 and float(bar["high"]) == 2.5
    assert bar["vwap"] == pytest.approx((1.5 * 6 + 2.5 * 4) / 10)
