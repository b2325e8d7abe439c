"""Features of volume bars, computed with numpy on whole columns (no per-row loops).

One definition serves training and live scoring so the two cannot drift: both call
:func:`feature_matrix`, training (through :func:`frame_matrix`) on a whole dataset read with
Arrow, the live scorer (:mod:`tradesignals_dagster.ml.scoring`) on each symbol's last
:data:`LOOKBACK` bars plus the new ones, keeping the rows of the new bars. Every lagged value is
taken within a symbol (rows are ordered by symbol, then time); a lag that reaches before a
symbol's first known bar is missing, and missing or non-finite values become 0.0, identically in
both paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def _lag(values: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """``values`` k rows earlier within the same group (symbol); NaN (missing) where that row is
    another symbol's or before the first row."""
    n = len(values)
    out = np.full(n, np.nan)
    if k < n:
        out[k:] = values[: n - k]
        out[k:][group[k:] != group[: n - k]] = np.nan
    return out


def _compute(name: str, c: Mapping[str, np.ndarray], group: np.ndarray) -> np.ndarray:
    """Feature ``name`` as float64, NaN where a value or its history is missing."""
    close = c["close"]
    if name == "returns_1":
        return close / _lag(close, group, 1) - 1.0
    if name == "returns_5":
        return close / _lag(close, group, 5) - 1.0
    if name == "vwap_gap":
        return close / c["vwap"] - 1.0
    elapsed = (c["timestamp"] - c["start_timestamp"]).astype(np.float64)
    if name == "volume_rate":
        # fmax: a missing duration counts as 1 ms, as Arrow's max_element_wise (skip_nulls) did.
        return (c["volume"] * 1000.0) / np.fmax(elapsed, 1.0)
    if name == "trade_count":
        return c["trade_count"]
    if name == "bar_seconds":
        return elapsed / 1000.0
    if name == "last_direction":
        return np.sign(close - _lag(close, group, 1))
    raise InvalidTrainingInput(f"unknown feature '{name}' (features: {', '.join(FEATURES)})")


def feature_matrix(columns: Mapping[str, np.ndarray], group: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The features ``names`` (rows x features, float64) of bars given as numpy columns: ``close``,
    ``vwap``, ``volume``, ``trade_count`` (float64), ``start_timestamp``, ``timestamp`` (int64
    milliseconds; float64 with NaN where missing) and ``group``, one id per row, equal for the rows
    of one symbol, which are contiguous and in time order. Missing history and non-finite values
    (a zero price) are 0.0. Training (:func:`frame_matrix`) and the live scorer both call this."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise InvalidTrainingInput(f"unknown feature '{unknown[0]}' (features: {', '.join(FEATURES)})")
    out = np.empty((len(group), len(names)), dtype=np.float64)
    with np.errstate(all="ignore"):
        for j, name in enumerate(names):
            out[:, j] = _compute(name, columns, group)
    out[~np.isfinite(out)] = 0.0
    return out


def _group_ids(symbols: pa.ChunkedArray) -> np.ndarray:
    """An id per row, equal for rows of the same symbol; a null symbol matches no other row."""
    indices = pc.dictionary_encode(symbols.combine_chunks()).indices
    ids = pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    nulls = ids < 0
    if nulls.any():
        ids[nulls] = -1 - np.arange(int(nulls.sum()))
    return ids


def _columns(frame: pa.Table) -> dict[str, np.ndarray]:
    return {
        name: frame[name].to_numpy()
        for name in ("close", "vwap", "volume", "trade_count", "start_timestamp", "timestamp")
    }


def frame_matrix(frame: pa.Table, names: Sequence[str]) -> np.ndarray:
    """:func:`feature_matrix` of every row of ``frame`` (from :func:`bars_frame`), in its order."""
    return feature_matrix(_columns(frame), _group_ids(frame["symbol"]), names)


def feature_table(frame: pa.Table, names: list[str]) -> pa.Table:
    """The features ``names`` of every row of ``frame`` (from :func:`bars_frame`), float64, in
    ``frame``'s order; non-finite values (a zero price) and missing history are 0.0."""
    values = frame_matrix(frame, names)
    return pa.table({name: values[:, j] for j, name in enumerate(names)})


def _arrays(frame: pa.Table) -> dict[str, pa.Array]:
    return {name: frame[name].combine_chunks() for name in BAR_COLUMNS}


def next_bar_direction(frame: pa.Table) -> pa.Array:
    """The target: 1 when the symbol's next bar closes higher, 0 when not, null for a symbol's
    last bar (its next bar is not known yet)."""
    arrays = _arrays(frame)
    nxt = _shift(arrays["close"], arrays["symbol"], -1)
    return pc.cast(pc.greater(nxt, arrays["close"]), pa.int8())
