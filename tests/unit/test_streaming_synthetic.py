"""The seeded option-trade generator: determinism, shape, throttling."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path

import pytest
from flagship_avro import OPTION_TRADES

from tradesignals_dagster.kafka.serde import AvroSerde
from tradesignals_dagster.registry.models import (
    StreamingPipeline,
    StreamingPipelineInput,
    StreamingPipelineOutput,
)
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.inputs import InputContext
from tradesignals_dagster.streaming.synthetic import (
    DEFAULT_START,
    OptionTradeGenerator,
    SyntheticConfig,
    SyntheticInput,
    config_from_metadata,
    occ_symbol,
)


def test_same_seed_same_trades_however_sliced() -> None:
    whole = OptionTradeGenerator(SyntheticConfig(symbols=30, seed=9)).take(5000)
    gen = OptionTradeGenerator(SyntheticConfig(symbols=30, seed=9))
    rng = random.Random(4)
    sliced: list[dict] = []
    while len(sliced) < 5000:
        sliced += gen.take(min(rng.randint(1, 700), 5000 - len(sliced)))
    assert sliced == whole


def test_different_seeds_differ() -> None:
    a = OptionTradeGenerator(SyntheticConfig(seed=1)).take(100)
    b = OptionTradeGenerator(SyntheticConfig(seed=2)).take(100)
    assert a != b


def test_trades_fit_the_option_trades_schema() -> None:
    trades = OptionTradeGenerator(SyntheticConfig(symbols=40, seed=3)).take(2000)
    serde = AvroSerde(OPTION_TRADES, 1, decimals="scaled_int")
    assert [serde.decode(v) for v in serde.encode_batch(trades)] == trades
    assert len({t["trade_id"] for t in trades}) == 2000
    assert trades[0]["timestamp"] >= DEFAULT_START
    assert all(b["timestamp"] >= a["timestamp"] for a, b in itertools.pairwise(trades))
    assert all(t["price"] > 0 and 1 <= t["size"] <= 500 and 1 <= len(t["symbol"]) <= 32 for t in trades)
    assert len({t["symbol"] for t in trades}) > 20


def test_symbols_are_unique_occ_symbols() -> None:
    gen = OptionTradeGenerator(SyntheticConfig(symbols=200, seed=0))
    assert len(set(gen.symbols)) == 200
    assert (
        occ_symbol("AAPL", __import__("datetime").date(2025, 1, 17), True, 15000) == "AAPL  250117C00150000"
    )


def test_count_stops_the_stream() -> None:
    gen = OptionTradeGenerator(SyntheticConfig(count=10))
    assert len(gen.take(7)) == 7 and len(gen.take(7)) == 3 and gen.take(7) == []
    assert len(list(OptionTradeGenerator(SyntheticConfig(count=2500)))) == 2500


def test_config_from_metadata_reads_registry_strings() -> None:
    spec = StreamingPipelineInput(
        type="synthetic",
        additional_metadata={
            "symbols": "5",
            "seed": "7",
            "rate": "250",
            "count": "9",
            "start_timestamp": "2025-01-17T00:00:00Z",
        },
    )
    cfg = config_from_metadata(spec, price_scale=4)
    assert cfg == SyntheticConfig(symbols=5, seed=7, rate=250.0, count=9, start_timestamp=1_737_072_000_000)
    with pytest.raises(PipelineConfigError, match="symbols"):
        config_from_metadata(StreamingPipelineInput(type="synthetic", additional_metadata={"symbols": "x"}))
    with pytest.raises(PipelineConfigError, match="rate"):
        SyntheticConfig(rate=-1)


def _input(metadata: dict[str, str]) -> SyntheticInput:
    spec = StreamingPipelineInput(type="synthetic", additional_metadata=metadata)
    pipe = StreamingPipeline(key="p", input=spec, output=StreamingPipelineOutput(topic_id="t"))
    ctx = InputContext(pipeline=pipe, schema=OPTION_TRADES, base_dir=Path("."), stop=threading.Event())
    return SyntheticInput(spec, ctx)


def test_input_is_throttled_to_its_rate() -> None:
    inp = _input({"rate": "2000", "seed": "1"})
    got = 0
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        got += len(inp.read(10_000, 0.05))
    assert 300 <= got <= 800  # ~600 expected in 0.3 s


def test_unthrottled_input_with_count_is_exhausted() -> None:
    inp = _input({"count": "2500"})
    sizes = []
    while not inp.exhausted:
        sizes.append(len(inp.read(1000, 0.1)))
    assert sizes == [1000, 1000, 500]
    assert inp.typed and inp.describe() == "synthetic:seed=0"
