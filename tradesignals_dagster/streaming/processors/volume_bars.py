"""Per-symbol volume bars: option trades in, one bar out each time a symbol trades N contracts.

Input trades are ``option_trades`` records; output bars are ``option_trades_aggs`` records.
Conventions (all per symbol; symbols never interact):

* Trades are applied in arrival order. Equal timestamps keep arrival order, and a late trade
  (earlier timestamp) is still applied where it arrives: ``start_timestamp``/``timestamp`` are
  the timestamps of the bar's first/last *applied* trade, ``open``/``close`` their prices.
* Default mode (``split_trades=False``): a trade that brings the bar's volume to
  ``bar_volume`` or beyond closes the bar with its WHOLE size, so ``volume >= bar_volume``; a
  trade several thresholds large still makes exactly one bar.
* ``split_trades=True``: the closing trade is cut so every bar has exactly ``bar_volume``; a
  trade several thresholds large fills several bars and its remainder opens the next one. Each
  piece counts as one trade in ``trade_count``. A trade landing exactly on the threshold closes
  the bar exactly (both modes) and leaves no open bar.
* ``vwap = sum(price * size) / volume`` as a float, computed exactly from integers and rounded
  once; ``price == close``; ``oi`` is the last applied trade's open interest; ``sequence``
  numbers a symbol's bars from 0. Zero-size trades are applied (prices and count); negative
  sizes are rejected.

Prices are **scaled ints** (units of ``10**-price_scale``, what ``AvroSerde(decimals=
"scaled_int")`` reads and writes): integer compare/add/multiply is the cheapest per-trade work,
sums are exact, and the state stays JSON-serializable. Bar prices come out the same way.

Recovery: :meth:`VolumeBarAggregator.snapshot` gives a symbol's state (open bar, next sequence
and the ``(partition, offset)`` of the last applied trade per source partition) as plain JSON;
:meth:`~VolumeBarAggregator.restore` loads it back. When ``process`` is given positions, a trade
at or below the symbol's last applied offset on its partition is skipped, so replaying from any
earlier consumer offset after a restore is idempotent. Bars are identified by
``(symbol, sequence)``, so a bar emitted twice around a crash can be de-duplicated downstream.
Trades processed without positions are not de-duplicated on replay. :meth:`dirty_keys`
(formerly ``dirty_symbols``, deprecated) names the
symbols whose snapshot changed, so the runtime writes only those.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.streaming.processors.base import Reject

SourcePosition = tuple[int, int]
"""``(partition, offset)`` of a trade in its source topic."""
SNAPSHOT_VERSION = 1
_BAR_KEYS = (
    "start_timestamp",
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "trade_count",
    "oi",
)


class VolumeBarsConfig(BaseModel):
    """Settings of the volume-bars processor, as written in a pipeline's YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bar_volume: int = Field(
        gt=0, description="Contracts per bar: a symbol's bar closes once it has traded this many."
    )
    split_trades: bool = Field(
        False,
        description=(
            "Cut the trade that crosses the threshold so every bar has exactly bar_volume "
            "contracts (the rest opens the next bar); when false the crossing trade closes "
            "the bar whole, so bars may hold more than bar_volume."
        ),
    )


class VolumeBarsError(TradesignalsError):
    """Base class for errors of the volume-bars processor."""


class StateError(VolumeBarsError):
    """A snapshot given to :meth:`VolumeBarAggregator.restore` is malformed or incompatible."""


class _SymbolState:
    """Mutable per-symbol state; ``count == 0`` means no open bar."""

    __slots__ = (
        "close",
        "count",
        "high",
        "low",
        "next_seq",
        "notional",
        "oi",
        "open",
        "positions",
        "start_ts",
        "ts",
        "volume",
    )

    def __init__(self) -> None:
        self.next_seq = 0
        self.positions: dict[int, int] = {}
        self.count = self.volume = self.notional = 0
        self.start_ts = self.ts = self.open = self.high = self.low = self.close = self.oi = 0


class VolumeBarAggregator:
    """Turns a stream of option trades into per-symbol volume bars (see module docstring).

    ``price_scale`` is the decimal scale of the scaled-int prices (4 for ``decimal(12,4)``);
    it is only used to express ``vwap`` in price units.
    """

    def __init__(self, config: VolumeBarsConfig, *, price_scale: int = 4, key_field: str = "symbol") -> None:
        if price_scale < 0:
            raise VolumeBarsError(f"price_scale must be >= 0, got {price_scale}")
        self.config = config
        self.price_scale = price_scale
        self.key_field = key_field
        self._factor = 10**price_scale
        self._states: dict[str, _SymbolState] = {}
        self._dirty: set[str] = set()

    def process(
        self,
        trades: Iterable[Mapping[str, Any]],
        positions: Iterable[SourcePosition] | None = None,
    ) -> list[Any]:
        """Apply ``trades`` in order and return the bars they closed, in closing order, with a
        :class:`~tradesignals_dagster.streaming.processors.base.Reject` in place of each trade
        that cannot be applied (the trades after it are applied as usual).

        A trade needs ``symbol``, ``timestamp``, ``price`` (scaled int), ``size`` and ``oi``.
        ``positions``, when given, runs alongside ``trades`` (same length) with each trade's
        ``(partition, offset)``; trades at or below a symbol's last applied offset on that
        partition are skipped (replay after :meth:`restore`).
        """
        bars: list[Any] = []
        emit = bars.append
        states, dirty, close = self._states, self._dirty, self._close
        bar_volume, split = self.config.bar_volume, self.config.split_trades
        pairs: Iterable[tuple[Mapping[str, Any], SourcePosition | None]] = (
            zip(trades, repeat(None)) if positions is None else zip(trades, positions, strict=True)
        )
        trade: Any = None
        pos: SourcePosition | None = None
        key_field = self.key_field
        it = iter(pairs)
        while True:
            try:
                for trade, pos in it:
                    sym = trade[key_field]
                    price = trade["price"]
                    size = trade["size"]
                    ts = trade["timestamp"]
                    oi = trade["oi"]
                    if price.__class__ is not int or size.__class__ is not int or size < 0:
                        raise ValueError(_bad_trade(price, size))
                    st = states.get(sym)
                    if st is None:
                        st = states[sym] = _SymbolState()
                    if pos is not None:
                        part, offset = pos
                        last = st.positions.get(part)
                        if last is not None and offset <= last:
                            continue
                        st.positions[part] = offset
                    dirty.add(sym)
                    volume = st.volume + size
                    if split and volume > bar_volume:
                        self._split(sym, st, ts, price, size, oi, emit)
                        continue
                    if st.count:
                        if price > st.high:
                            st.high = price
                        elif price < st.low:
                            st.low = price
                        st.notional += price * size
                        st.count += 1
                    else:
                        st.start_ts = ts
                        st.open = st.high = st.low = price
                        st.notional = price * size
                        st.count = 1
                    st.volume = volume
                    st.close = price
                    st.ts = ts
                    st.oi = oi
                    if volume >= bar_volume:
                        emit(close(sym, st))
                return bars
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, ValueError) and str(exc).startswith("zip()"):
                    raise VolumeBarsError("positions and trades differ in length") from exc
                reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                emit(Reject(trade, reason, pos, "InvalidTradeError"))  # and go on after it

    def _split(
        self,
        sym: str,
        st: _SymbolState,
        ts: int,
        price: int,
        size: int,
        oi: int,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        """Apply a trade that overfills the open bar, cutting it into exactly-full bars."""
        bar_volume = self.config.bar_volume
        while size:
            piece = min(size, bar_volume - st.volume)
            if st.count:
                st.high = max(st.high, price)
                st.low = min(st.low, price)
                st.notional += price * piece
                st.count += 1
            else:
                st.start_ts = ts
                st.open = st.high = st.low = price
                st.notional = price * piece
                st.count = 1
            st.volume += piece
            st.close, st.ts, st.oi = price, ts, oi
            size -= piece
            if st.volume == bar_volume:
                emit(self._close(sym, st))

    def _close(self, sym: str, st: _SymbolState) -> dict[str, Any]:
        """The bar of ``st`` as an ``option_trades_aggs`` record; resets ``st`` to no bar."""
        volume = st.volume
        bar = {
            "symbol": sym,
            "sequence": st.next_seq,
            "start_timestamp": st.start_ts,
            "timestamp": st.ts,
            "open": st.open,
            "high": st.high,
            "low": st.low,
            "close": st.close,
            "volume": volume,
            "vwap": st.notional / (volume * self._factor),
            "trade_count": st.count,
            "oi": st.oi,
            "price": st.close,
        }
        st.next_seq += 1
        st.count = st.volume = st.notional = 0
        return bar

    # -- state ----------------------------------------------------------------------------------

    def dirty_keys(self) -> set[str]:
        """Keys (symbols) whose state changed since the previous call (their snapshots are stale)."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dirty_symbols(self) -> set[str]:
        """Deprecated alias of :meth:`dirty_keys` (goes in the next release)."""
        warnings.warn("dirty_symbols() is deprecated: use dirty_keys()", DeprecationWarning, stacklevel=2)
        return self.dirty_keys()

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """JSON-serializable state of symbol ``key``, or ``None`` if it has none.

        ``{"version", "symbol", "price_scale", "next_sequence", "positions": [[partition,
        offset], ...], "bar": None | {start_timestamp, timestamp, open, high, low, close,
        volume, notional, trade_count, oi}}``; ``notional`` is ``sum(price * size)``.
        """
        st = self._states.get(key)
        if st is None:
            return None
        bar = None
        if st.count:
            ohlc = (st.open, st.high, st.low, st.close)
            values = (st.start_ts, st.ts, *ohlc, st.volume, st.notional, st.count, st.oi)
            bar = dict(zip(_BAR_KEYS, values, strict=True))
        return {
            "version": SNAPSHOT_VERSION,
            "symbol": key,
            "price_scale": self.price_scale,
            "next_sequence": st.next_seq,
            "positions": [[p, o] for p, o in sorted(st.positions.items())],
            "bar": bar,
        }

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by :meth:`snapshot`, replacing those symbols' current state."""
        for snap in states:
            symbol, st = self._load(snap)
            self._states[symbol] = st
            self._dirty.discard(symbol)

    def _load(self, snap: Mapping[str, Any]) -> tuple[str, _SymbolState]:
        """Validate one snapshot and build its state; :class:`StateError` says what is wrong."""
        what = f"snapshot of {snap.get('symbol')!r}" if isinstance(snap, Mapping) else "snapshot"
        try:
            if snap["version"] != SNAPSHOT_VERSION:
                raise StateError(f"{what}: unsupported version {snap['version']!r}")
            if snap["price_scale"] != self.price_scale:
                raise StateError(
                    f"{what}: prices are scaled by 10^-{snap['price_scale']}, this aggregator "
                    f"uses 10^-{self.price_scale}"
                )
            symbol = snap["symbol"]
            st = _SymbolState()
            st.next_seq = _int(snap["next_sequence"], "next_sequence")
            st.positions = {_int(p, "partition"): _int(o, "offset") for p, o in snap["positions"]}
            bar = snap["bar"]
            if bar is not None:
                values = [_int(bar[k], k) for k in _BAR_KEYS]
                (st.start_ts, st.ts, st.open, st.high, st.low, st.close) = values[:6]
                (st.volume, st.notional, st.count, st.oi) = values[6:]
                if st.count < 1:
                    raise StateError(f"{what}: an open bar needs trade_count >= 1")
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"{what} is malformed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(symbol, str) or not symbol:
            raise StateError(f"{what}: symbol must be a non-empty string")
        return symbol, st


def _bad_trade(price: Any, size: Any) -> str:
    """Why a trade with this price and size cannot be applied."""
    if price.__class__ is not int:
        return (
            f"price must be a scaled int (read trades with AvroSerde(decimals='scaled_int')), "
            f"got {type(price).__name__} {price!r}"
        )
    if size.__class__ is not int:
        return f"size must be an int, got {type(size).__name__} {size!r}"
    return f"size {size} is negative"


def _int(value: Any, name: str) -> int:
    """``value`` if it is an int (not a bool), else a :class:`StateError` naming ``name``."""
    if value.__class__ is not int:
        raise StateError(f"{name} must be an integer, got {value!r}")
    return int(value)
