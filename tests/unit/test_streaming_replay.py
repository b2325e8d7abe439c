"""Record files, coercion, the replay input and offline ``replay_file`` (no Kafka)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flagship_avro import OPTION_TRADES, OPTION_TRADES_AGGS

from tradesignals_dagster.registry.loader import load_application
from tradesignals_dagster.registry.models import (
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
)
from tradesignals_dagster.streaming.config import apply_overrides, parse_overrides, split_config
from tradesignals_dagster.streaming.errors import InputError, PipelineConfigError, RecordError
from tradesignals_dagster.streaming.files import BadRow, read_rows, write_records
from tradesignals_dagster.streaming.inputs import InputContext, InputFailure, ReplayInput
from tradesignals_dagster.streaming.processors.volume_bars import VolumeBarAggregator, VolumeBarsConfig
from tradesignals_dagster.streaming.records import RecordSchema
from tradesignals_dagster.streaming.replay import replay_file
from tradesignals_dagster.streaming.synthetic import OptionTradeGenerator, SyntheticConfig

PROJECT = Path(__file__).resolve().parents[2]
TRADES = RecordSchema(OPTION_TRADES)
BARS = RecordSchema(OPTION_TRADES_AGGS)


def trades(n: int = 3000, seed: int = 2) -> list[dict[str, Any]]:
    return OptionTradeGenerator(SyntheticConfig(symbols=12, seed=seed)).take(n)


# -- coercion -------------------------------------------------------------------------------------


def test_coerce_converts_loose_values_exactly() -> None:
    row = {"trade_id": 17, "symbol": "S", "timestamp": "2025-01-17T00:00:00.250+00:00", "price": "1.5",
           "size": "3", "extra": "dropped"}  # fmt: skip
    assert TRADES.coerce(row) == {
        "trade_id": "17", "symbol": "S", "underlying": "", "timestamp": 1_737_072_000_250,
        "price": 15_000, "size": 3, "oi": 0,
    }  # fmt: skip
    assert TRADES.coerce({**row, "price": 1.1, "size": 3.0})["price"] == 11_000
    assert TRADES.coerce({**row, "price": Decimal("2.0001")})["price"] == 20_001
    assert TRADES.coerce({**row, "timestamp": dt.datetime(2025, 1, 17)})["timestamp"] == 1_737_072_000_000
    assert TRADES.coerce({**row, "oi": ""})["oi"] == 0  # empty CSV cell -> default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price": "1.23456"}, "more than 4 decimal places"),
        ({"price": "123456789"}, "more than 12 digits"),
        ({"price": "abc"}, "not a decimal"),
        ({"size": 1.5}, "not an integer"),
        ({"size": 2**31}, "outside the Avro range"),
        ({"size": True}, "expected an integer"),
        ({"timestamp": "yesterday"}, "neither an epoch number nor an ISO"),
        ({"symbol": None}, "null"),
        ({"symbol": ["x"]}, "expected a string"),
    ],
)
def test_coerce_refuses_what_does_not_fit(change: dict[str, Any], message: str) -> None:
    row = {"trade_id": "t", "symbol": "S", "timestamp": 1, "price": "1", "size": 1}
    with pytest.raises(RecordError, match=message):
        TRADES.coerce({**row, **change})
    with pytest.raises(RecordError, match="'size' is missing"):
        TRADES.coerce({k: v for k, v in row.items() if k != "size"})


# -- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["jsonl", "csv", "parquet"])
def test_files_round_trip_through_coercion(tmp_path: Path, ext: str) -> None:
    data = trades(500)
    path = tmp_path / f"trades.{ext}"
    assert write_records(path, data, TRADES) == 500
    assert [TRADES.coerce(r) for r in read_rows(path)] == data  # type: ignore[arg-type]


def test_written_decimals_are_exact(tmp_path: Path) -> None:
    write_records(tmp_path / "t.jsonl", [trades(1)[0] | {"price": 12_345}], TRADES)
    assert json.loads((tmp_path / "t.jsonl").read_text())["price"] == "1.2345"
    write_records(tmp_path / "t.csv", [trades(1)[0] | {"price": 5}], TRADES)
    assert "0.0005" in (tmp_path / "t.csv").read_text()


def test_bad_jsonl_lines_and_unknown_extensions(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[1]\n')
    rows = list(read_rows(path))
    assert (
        rows[0] == {"a": 1}
        and isinstance(rows[1], BadRow)
        and rows[1].line == 3
        and isinstance(rows[2], BadRow)
    )
    with pytest.raises(InputError, match="unknown record file type"):
        list(read_rows(tmp_path / "t.xlsx"))
    with pytest.raises(InputError, match="no such file"):
        list(read_rows(tmp_path / "missing.csv"))


# -- replay input ---------------------------------------------------------------------------------


def _replay_input(path: Path, speed: float | None) -> ReplayInput:
    spec = StreamingPipelineInput(type="replay", path=str(path), speed=speed)
    pipe = StreamingPipeline(key="r", input=spec, output=StreamingPipelineOutput(topic_id="t"))
    ctx = InputContext(pipeline=pipe, schema=OPTION_TRADES, base_dir=path.parent, stop=threading.Event())
    inp = ReplayInput(spec, ctx)
    inp.open()
    return inp


def test_replay_input_as_fast_as_possible(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_records(path, trades(250), TRADES)
    with path.open("a") as fh:
        fh.write("oops\n")
    inp = _replay_input(path, None)
    sizes = []
    while not inp.exhausted:
        sizes.append(len(inp.read(100, 0.1)))
    assert sum(sizes) == 251 and sizes[:2] == [100, 100]
    assert inp.describe() == f"replay:{path}"


def test_replay_input_paces_by_timestamp(tmp_path: Path) -> None:
    rows = [
        {"trade_id": f"t{i}", "symbol": "S", "timestamp": 1000 + i * 100, "price": "1", "size": 1}
        for i in range(5)
    ]
    path = tmp_path / "t.csv"
    write_records(path, [TRADES.coerce(r) for r in rows], TRADES)
    inp = _replay_input(path, speed=2.0)  # 100 ms apart at 2x -> 50 ms apart
    start = time.monotonic()
    got: list[Any] = []
    while not inp.exhausted:
        got += inp.read(100, 0.5).records
    elapsed = time.monotonic() - start
    assert len(got) == 5 and not any(isinstance(g, InputFailure) for g in got)
    assert 0.18 <= elapsed < 1.0


# -- overrides and replay_file ----------------------------------------------------------------------


def test_overrides_and_runtime_section() -> None:
    assert parse_overrides(["bar_volume=100", "runtime.dead_letter=stop", "name=abc"]) == {
        "bar_volume": 100,
        "runtime.dead_letter": "stop",
        "name": "abc",
    }
    config = apply_overrides(
        {"bar_volume": 500, "runtime": {"batch_size": 5}}, {"bar_volume": "7", "runtime.linger_ms": 1}
    )
    transform, options = split_config(config)
    assert transform == {"bar_volume": 7} and options.batch_size == 5 and options.linger_ms == 1
    with pytest.raises(PipelineConfigError, match="batch_size"):
        split_config({"runtime": {"batch_size": 0}})
    with pytest.raises(PipelineConfigError, match="not key=value"):
        parse_overrides(["oops"])


def test_replay_file_uses_the_pipelines_app_and_overrides(tmp_path: Path) -> None:
    app = load_application(PROJECT / "registry", PROJECT / "pipelines")
    data = trades(4000)
    src = tmp_path / "trades.parquet"
    write_records(src, data, TRADES)
    result = replay_file(
        app, "option_trade_volume_bars", src, tmp_path / "bars.parquet", {"bar_volume": "300"},
        pipelines_dir=PROJECT / "pipelines",
    )  # fmt: skip
    expected = VolumeBarAggregator(VolumeBarsConfig(bar_volume=300)).process(data)
    assert result.records_in == 4000 and result.rejected == 0 and result.records_out == len(expected)
    written = [BARS.coerce(r) for r in read_rows(tmp_path / "bars.parquet")]  # type: ignore[arg-type]
    assert written == expected


def test_replay_file_counts_and_writes_rejects(tmp_path: Path) -> None:
    app = load_application(PROJECT / "registry", PROJECT / "pipelines")
    src = tmp_path / "trades.jsonl"
    write_records(src, trades(10), TRADES)
    with src.open("a") as fh:
        fh.write("{broken\n")
        fh.write(
            json.dumps({"trade_id": "x", "symbol": "S", "timestamp": 1, "price": "1", "size": -4}) + "\n"
        )
        fh.write(json.dumps({"trade_id": "y", "symbol": "", "timestamp": 1, "price": "1", "size": 4}) + "\n")
    result = replay_file(
        app, "option_trade_volume_bars", src, tmp_path / "bars.csv", pipelines_dir=PROJECT / "pipelines",
        rejects_path=tmp_path / "rejects.jsonl",
    )  # fmt: skip
    assert result.records_in == 13 and result.rejected == 3
    assert [r["stage"] for r in result.rejections] == ["decode", "process", "validate"]
    assert [r["row"] for r in result.rejections] == [11, 12, 13]
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejects[1]["record"]["trade_id"] == "x"
    assert (tmp_path / "bars.csv").read_text().startswith("symbol,sequence,start_timestamp")


def test_replay_file_of_a_feed_pipeline_passes_records_through(tmp_path: Path) -> None:
    app = load_application(PROJECT / "registry", PROJECT / "pipelines")
    src = tmp_path / "trades.csv"
    write_records(src, trades(50), TRADES)
    result = replay_file(
        app, "option_trades_ingest", src, tmp_path / "out.jsonl", pipelines_dir=PROJECT / "pipelines"
    )
    assert result.records_out == 50
    with pytest.raises(PipelineConfigError, match="no pipeline 'nope'"):
        replay_file(app, "nope", src, tmp_path / "x.jsonl")
