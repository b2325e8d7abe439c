"""A seeded option-trade generator: demos and benchmarks without a market feed.

The stream depends only on the settings (``symbols``, ``seed``, ``rate``, ``start_timestamp``):
the same seed always yields the same trades, however the caller slices them into batches,
because every random quantity (symbol choice, size, price move, time step) has its own
``random.Random`` stream that draws exactly one number per trade.

Trades follow the ``option_trades`` schema: OCC-style symbols over a dozen underlyings, a few
very active contracts and a long tail (Pareto activity weights), sizes from 1 to 500
contracts, prices walking by one cent, event times advancing by exponential gaps whose mean
matches ``rate`` (1 ms when unthrottled). Prices are scaled ints at ``price_scale``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tradesignals_dagster.registry.models import StreamingPipelineInput
from tradesignals_dagster.streaming.errors import PipelineConfigError
from tradesignals_dagster.streaming.inputs import InputBatch, InputContext, PipelineInput, metadata
from tradesignals_dagster.streaming.records import RecordSchema

UNDERLYINGS = ("SPY", "QQQ", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "IWM", "GOOGL", "AMD", "NFLX")
SIZES = (1, 1, 1, 2, 2, 3, 4, 5, 5, 10, 10, 10, 15, 20, 25, 30, 50, 75, 100, 150, 250, 500)
DEFAULT_START = 1_704_205_800_000
"""2024-01-02T14:30:00Z, the default first event time (fixed so a seed fixes the stream)."""
_FIRST_EXPIRY = dt.date(2025, 1, 17)


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the generator (``input.additional_metadata`` of a synthetic input)."""

    symbols: int = 50
    seed: int = 0
    rate: float = 0.0
    """Trades per second of wall time; 0 generates as fast as the pipeline takes them."""
    count: int | None = None
    """Stop after this many trades (None: never)."""
    start_timestamp: int = DEFAULT_START
    price_scale: int = 4

    def __post_init__(self) -> None:
        if self.symbols < 1:
            raise PipelineConfigError(f"synthetic input: symbols must be >= 1, got {self.symbols}")
        if self.rate < 0 or not math.isfinite(self.rate):
            raise PipelineConfigError(f"synthetic input: rate must be >= 0, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise PipelineConfigError(f"synthetic input: count must be >= 0, got {self.count}")
        if self.price_scale < 2:
            raise PipelineConfigError("synthetic input: prices need a decimal scale of at least 2 (cents)")


def occ_symbol(underlying: str, expiry: dt.date, call: bool, strike_cents: int) -> str:
    """An OCC option symbol: root padded to 6, YYMMDD, C/P, strike x 1000 on 8 digits."""
    return f"{underlying:<6}{expiry:%y%m%d}{'C' if call else 'P'}{strike_cents * 10:08d}"


class OptionTradeGenerator:
    """The deterministic trade stream of a :class:`SyntheticConfig` (see module docstring)."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        seed = config.seed
        setup = random.Random(f"{seed}:setup")
        self._pick = random.Random(f"{seed}:symbol")
        self._size = random.Random(f"{seed}:size")
        self._move = random.Random(f"{seed}:price")
        self._gap = random.Random(f"{seed}:time")
        unit = 10**config.price_scale
        self._tick = unit // 100
        self.contracts: list[tuple[str, str]] = []
        self._prices: list[int] = []
        self._oi: list[int] = []
        weights: list[float] = []
        strike_base = {u: 5_000 + 500 * setup.randrange(0, 40) for u in UNDERLYINGS}
        for i in range(config.symbols):
            und = UNDERLYINGS[i % len(UNDERLYINGS)]
            j = i // len(UNDERLYINGS)
            expiry = _FIRST_EXPIRY + dt.timedelta(weeks=j % 6)
            call = (j // 6) % 2 == 0
            strike = strike_base[und] + 500 * (j // 12)  # (expiry, call, strike) unique per j
            self.contracts.append((occ_symbol(und, expiry, call, strike), und))
            self._prices.append(setup.randrange(5, 2_000) * self._tick)
            self._oi.append(setup.randrange(100, 50_000))
            weights.append(setup.paretovariate(1.2))
        self._cum = list(itertools.accumulate(weights))
        self._population = range(config.symbols)
        self._mean_gap_ms = 1000.0 / config.rate if config.rate > 0 else 1.0
        self._ts = config.start_timestamp
        self._ts_frac = 0.0
        self.generated = 0

    @property
    def symbols(self) -> list[str]:
        """The contract symbols, in generator order."""
        return [s for s, _ in self.contracts]

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` trades (fewer once ``count`` is reached)."""
        if self.config.count is not None:
            n = max(0, min(n, self.config.count - self.generated))
        if n <= 0:
            return []
        picks = self._pick.choices(self._population, cum_weights=self._cum, k=n)
        sizes = self._size.choices(SIZES, k=n)
        move = self._move.random
        gap = self._gap.random
        mean = self._mean_gap_ms
        prices, oi, contracts, tick = self._prices, self._oi, self.contracts, self._tick
        seed = self.config.seed
        out: list[dict[str, Any]] = []
        append = out.append
        ts, frac, n0 = self._ts, self._ts_frac, self.generated
        for k in range(n):
            i = picks[k]
            r = move()
            price = prices[i]
            if r < 0.35:
                if price > tick:
                    price -= tick
            elif r >= 0.65:
                price += tick
            prices[i] = price
            frac += -math.log(1.0 - gap()) * mean
            whole = int(frac)
            ts += whole
            frac -= whole
            symbol, und = contracts[i]
            append(
                {
                    "trade_id": f"T{seed}-{n0 + k}",
                    "symbol": symbol,
                    "underlying": und,
                    "timestamp": ts,
                    "price": price,
                    "size": sizes[k],
                    "oi": oi[i],
                }
            )
        self._ts, self._ts_frac = ts, frac
        self.generated += n
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            chunk = self.take(1024)
            if not chunk:
                return
            yield from chunk


def config_from_metadata(spec: StreamingPipelineInput, price_scale: int = 4) -> SyntheticConfig:
    """A :class:`SyntheticConfig` from a synthetic input's ``additional_metadata``.

    Keys: ``symbols``, ``seed``, ``rate`` (trades/s, 0 = unthrottled), ``count`` (stop after),
    ``start_timestamp`` (epoch ms, ISO time, or ``now``).
    """
    start_raw = spec.additional_metadata.get("start_timestamp", DEFAULT_START)
    if isinstance(start_raw, str) and start_raw.strip().lower() == "now":
        start = int(time.time() * 1000)
    else:
        from tradesignals_dagster.streaming.records import RecordError, to_epoch

        try:
            start = to_epoch(start_raw, 1000)
        except RecordError as exc:
            raise PipelineConfigError(f"synthetic input: start_timestamp: {exc}") from None
    count = metadata(spec, "count", None, int)
    return SyntheticConfig(
        symbols=metadata(spec, "symbols", 50, int),
        seed=metadata(spec, "seed", 0, int),
        rate=metadata(spec, "rate", 0.0, float),
        count=count,
        start_timestamp=start,
        price_scale=price_scale,
    )


class SyntheticInput(PipelineInput):
    """The generator as a pipeline input, throttled to ``rate`` trades per second."""

    typed = True

    def __init__(self, spec: StreamingPipelineInput, ctx: InputContext) -> None:
        super().__init__(spec, ctx)
        scale = RecordSchema(ctx.schema).decimal_scale("price")
        self.config = config_from_metadata(spec, scale if scale is not None else 4)
        self.generator = OptionTradeGenerator(self.config)
        self._t0: float | None = None

    def describe(self) -> str:
        """``synthetic:seed=<seed>``."""
        return f"synthetic:seed={self.config.seed}"

    @property
    def exhausted(self) -> bool:
        """True once ``count`` trades were generated."""
        return self.config.count is not None and self.generator.generated >= self.config.count

    def read(self, max_records: int, timeout_s: float) -> InputBatch:
        """The trades due by now (all ``max_records`` when unthrottled)."""
        rate = self.config.rate
        if rate <= 0:
            return InputBatch(self.generator.take(max_records))
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        allowed = int((now - self._t0) * rate) - self.generator.generated
        if allowed <= 0:
            wait = (self.generator.generated + 1) / rate - (now - self._t0)
            self.ctx.stop.wait(max(0.0, min(timeout_s, wait)))
            return InputBatch()
        return InputBatch(self.generator.take(min(max_records, allowed)))
