"""Time bars: OHLCV per key over fixed event-time windows (e.g. 1-second bars per symbol).

Built on :class:`~tradesignals_dagster.streaming.windows.EventTimeWindows` (watermarks, grace,
late policy, state). A bar covers the trades whose ``timestamp`` is in ``[window_start,
window_end)``, whatever order they arrive in:

* ``open`` is the price of the trade with the earliest timestamp (ties: the first to arrive),
  ``close`` (and ``oi``) of the one with the latest timestamp (ties: the last to arrive);
* ``high``/``low`` the extreme prices, ``volume`` the sum of sizes, ``trade_count`` the number
  of trades, ``vwap = sum(price * size) / volume`` (the close price when volume is 0);
* ``revision`` is 0 when the window closes and grows by one each time a late trade updates it
  (``late: update``); ``(symbol, window_start, revision)`` identifies a bar.

Prices are scaled ints, as for volume bars. Windows with no trade make no bar.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.streaming.processors.base import BuildContext
from tradesignals_dagster.streaming.windows import EventTimeWindows, WindowConfig

# accumulator layout
_OPEN_TS, _OPEN, _HIGH, _LOW, _CLOSE_TS, _CLOSE, _VOLUME, _NOTIONAL, _COUNT, _OI = range(10)


class TimeBarsConfig(BaseModel):
    """Settings of the time-bars processor (a pipeline's config.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: WindowConfig = Field(description="The event-time windows (size_ms, grace_ms, late, ...).")
    time_field: str = Field("timestamp", description="Input field holding the event time (epoch ms).")


class OhlcvAggregation:
    """The OHLCV accumulator of one window (a JSON list, see the layout above)."""

    def __init__(self, price_scale: int = 4, time_field: str = "timestamp") -> None:
        self.factor = 10**price_scale
        self.time_field = time_field

    def start(self, record: Mapping[str, Any]) -> list[Any]:
        """A window holding only ``record``."""
        ts, price, size = record[self.time_field], record["price"], record["size"]
        if price.__class__ is not int or size.__class__ is not int or size < 0:
            raise ValueError(_bad(price, size))
        oi = record.get("oi") or 0
        return [ts, price, price, price, ts, price, size, price * size, 1, oi]

    def add(self, acc: list[Any], record: Mapping[str, Any]) -> None:
        """Add ``record`` to window ``acc`` (indexes are literal: the per-trade hot path)."""
        ts, price, size = record[self.time_field], record["price"], record["size"]
        if price.__class__ is not int or size.__class__ is not int or size < 0:
            raise ValueError(_bad(price, size))
        if ts < acc[0]:  # _OPEN_TS, _OPEN
            acc[0] = ts
            acc[1] = price
        if ts >= acc[4]:  # _CLOSE_TS, _CLOSE, _OI
            acc[4] = ts
            acc[5] = price
            acc[9] = record.get("oi") or 0
        if price > acc[2]:  # _HIGH
            acc[2] = price
        elif price < acc[3]:  # _LOW
            acc[3] = price
        acc[6] += size  # _VOLUME
        acc[7] += price * size  # _NOTIONAL
        acc[8] += 1  # _COUNT

    def result(self, key: str, start: int, end: int, acc: list[Any], revision: int) -> dict[str, Any]:
        """The ``option_ohlcv_1s`` record of a window."""
        volume = acc[_VOLUME]
        vwap = acc[_NOTIONAL] / (volume * self.factor) if volume else acc[_CLOSE] / self.factor
        return {
            "symbol": key,
            "window_start": start,
            "window_end": end,
            "revision": revision,
            "open": acc[_OPEN],
            "high": acc[_HIGH],
            "low": acc[_LOW],
            "close": acc[_CLOSE],
            "volume": volume,
            "vwap": vwap,
            "trade_count": acc[_COUNT],
            "oi": acc[_OI],
        }


def _bad(price: Any, size: Any) -> str:
    """Why a trade with this price and size cannot be applied."""
    if price.__class__ is not int:
        return f"price must be a scaled int, got {type(price).__name__} {price!r}"
    return f"size must be a non-negative int, got {size!r}"


def build_time_bars(ctx: BuildContext) -> EventTimeWindows:
    """The time-bars processor of a pipeline: settings from config.yaml, state keyed by the
    pipeline's key field (which, like ``time_field``, the input schema must have)."""
    config = TimeBarsConfig(**ctx.config)
    key_field = ctx.key_field or "symbol"
    ctx.require_field(key_field, "runtime.key_field")
    ctx.require_field(config.time_field, "time_field")
    aggregation = OhlcvAggregation(ctx.decimal_scale("price"), config.time_field)
    return EventTimeWindows(config.window, aggregation, key_field=key_field, time_field=config.time_field)
