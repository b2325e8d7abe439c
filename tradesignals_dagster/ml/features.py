"""Features of volume bars, computed with Arrow compute on whole columns (no per-row loops).

One definition serves training and live scoring so the two cannot drift: training calls
:func:`feature_table` on a whole dataset; the scoring processor keeps the last
:data:`LOOKBACK` bars of each symbol and calls the same function on those bars plus the new
ones, then keeps the rows of the new bars. Every lagged value is taken within a symbol (rows are
ordered by symbol, then time); a lag that reaches before a symbol's first known bar is null, and
nulls become 0.0 in the matrix, identically in both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradesignals_dagster.ml.errors import InvalidTrainingInput

BAR_COLUMNS = ("symbol", "sequence", "start_timestamp", "timestamp", "close", "vwap", "volume", "trade_count")
"""The bar columns features and the target read (numeric ones as float64/int64 after :func:`bars_frame`)."""


@dataclass(frozen=True)
class Feature:
    """A named feature: the dataset columns it needs and how many earlier bars it looks at."""

    name: str
    columns: tuple[str, ...]
    lookback: int
    doc: str


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("returns_1", ("symbol", "close"), 1, "close / previous close - 1"),
        Feature("returns_5", ("symbol", "close"), 5, "close / close five bars earlier - 1"),
        Feature("vwap_gap", ("close", "vwap"), 0, "close / vwap - 1: where the bar closed against its VWAP"),
        Feature(
            "volume_rate",
            ("volume", "start_timestamp", "timestamp"),
            0,
            "contracts per second over the bar (duration floored at 1 ms)",
        ),
        Feature("trade_count", ("trade_count",), 0, "trades in the bar"),
        Feature("bar_seconds", ("start_timestamp", "timestamp"), 0, "bar duration in seconds"),
        Feature("last_direction", ("symbol", "close"), 1, "sign of close - previous close (-1, 0, 1)"),
    )
}
LOOKBACK = max(f.lookback for f in FEATURES.values())
"""Earlier bars of a symbol the live path keeps so every feature sees the history training saw."""


def bars_frame(table: pa.Table, *, sort: bool = True) -> pa.Table:
    """``table``'s bar columns as plain types (decimals and timestamps to float64/int64), ordered
    by symbol, then time, then sequence, the order every lag in this module assumes (``sort=False``
    when the caller already grouped rows so, as the live scorer does)."""
    missing = [c for c in BAR_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidTrainingInput(f"the bars lack column(s) {', '.join(missing)}")
    cols = {
        "symbol": pc.cast(table["symbol"], pa.string()),
        "sequence": pc.cast(table["sequence"], pa.int64()),
        "start_timestamp": _millis(table["start_timestamp"]),
        "timestamp": _millis(table["timestamp"]),
    }
    for name in ("close", "vwap", "volume", "trade_count"):
        cols[name] = pc.cast(table[name], pa.float64())
    frame = pa.table(cols)
    if not sort:
        return frame
    return frame.sort_by([("symbol", "ascending"), ("timestamp", "ascending"), ("sequence", "ascending")])


def _millis(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ms", tz=column.type.tz))
    return pc.cast(column, pa.int64())


def _shift(column: pa.Array, symbols: pa.Array, k: int) -> pa.Array:
    """``column`` moved down (k > 0: the value k bars earlier) or up (k < 0: later) within each
    symbol; null where that bar is another symbol's or outside the table."""
    n = len(column)
    if k == 0 or n == 0:
        return column
    m = min(abs(k), n)
    if k > 0:
        moved = pa.concat_arrays([pa.nulls(m, column.type), column.slice(0, n - m)])
        moved_sym = pa.concat_arrays([pa.nulls(m, symbols.type), symbols.slice(0, n - m)])
    else:
        moved = pa.concat_arrays([column.slice(m), pa.nulls(m, column.type)])
        moved_sym = pa.concat_arrays([symbols.slice(m), pa.nulls(m, symbols.type)])
    same = pc.fill_null(pc.equal(moved_sym, symbols), False)
    return pc.if_else(same, moved, pa.nulls(n, column.type))


def _compute(name: str, c: dict[str, pa.Array]) -> pa.Array:
    close, sym = c["close"], c["symbol"]
    if name == "returns_1":
        return pc.subtract(pc.divide(close, _shift(close, sym, 1)), 1.0)
    if name == "returns_5":
        return pc.subtract(pc.divide(close, _shift(close, sym, 5)), 1.0)
    if name == "vwap_gap":
        return pc.subtract(pc.divide(close, c["vwap"]), 1.0)
    duration_ms = pc.max_element_wise(pc.subtract(c["timestamp"], c["start_timestamp"]), 1)
    if name == "volume_rate":
        return pc.divide(pc.multiply(c["volume"], 1000.0), pc.cast(duration_ms, pa.float64()))
    if name == "trade_count":
        return c["trade_count"]
    if name == "bar_seconds":
        return pc.divide(pc.cast(pc.subtract(c["timestamp"], c["start_timestamp"]), pa.float64()), 1000.0)
    if name == "last_direction":
        return pc.cast(pc.sign(pc.subtract(close, _shift(close, sym, 1))), pa.float64())
    raise InvalidTrainingInput(f"unknown feature '{name}' (features: {', '.join(FEATURES)})")


def _arrays(frame: pa.Table) -> dict[str, pa.Array]:
    return {name: frame[name].combine_chunks() for name in BAR_COLUMNS}


def feature_table(frame: pa.Table, names: list[str]) -> pa.Table:
    """The features ``names`` of every row of ``frame`` (from :func:`bars_frame`), float64, in
    ``frame``'s order; non-finite values (a zero price) and missing history are 0.0."""
    arrays = _arrays(frame)
    out = {}
    for name in names:
        values = pc.cast(_compute(name, arrays), pa.float64())
        finite = pc.fill_null(pc.is_finite(values), False)
        out[name] = pc.if_else(finite, values, 0.0)
    return pa.table(out)


def next_bar_direction(frame: pa.Table) -> pa.Array:
    """The target: 1 when the symbol's next bar closes higher, 0 when not, null for a symbol's
    last bar (its next bar is not known yet)."""
    arrays = _arrays(frame)
    nxt = _shift(arrays["close"], arrays["symbol"], -1)
    return pc.cast(pc.greater(nxt, arrays["close"]), pa.int8())


def matrix(features: pa.Table) -> np.ndarray:
    """The features as a 2-D float64 array (rows x features) for the trainer."""
    if features.num_columns == 0:
        return np.zeros((features.num_rows, 0))
    return np.column_stack([features[n].to_numpy() for n in features.column_names]).astype(np.float64)
