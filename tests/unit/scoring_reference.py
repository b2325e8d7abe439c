"""The first live scorer (Arrow tables and deques of tuples), kept as the tests' reference: the
product's scorer (:mod:`tradesignals_dagster.ml.scoring`) must give the same signals and state
snapshots bit for bit. Not product code."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.scoring import SNAPSHOT_VERSION, LoadedModel
from tradesignals_dagster.ml.trainers import Trainer
from tradesignals_dagster.streaming.processors.base import SourcePosition

log = logging.getLogger(__name__)
_NUMERIC = ("sequence", "start_timestamp", "timestamp", "close", "vwap", "volume", "trade_count")


class BarScorer:
    """The processor: scores bars with ``model`` (None: no promoted version yet, nothing is
    published until one is promoted and the pipeline is redeployed with it)."""

    def __init__(self, model: LoadedModel | None, price_scale: int = 4) -> None:
        self.model = model
        self._scale = 10.0**price_scale
        self._history: dict[str, deque[tuple[Any, ...]]] = {}
        self._dirty: set[str] = set()
        self._warned = False

    def process(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[SourcePosition] | None = None,
    ) -> list[dict[str, Any]]:
        """One signal per bar of ``records``, in their order."""
        if self.model is None:
            if not self._warned:
                log.warning("no promoted model version: bars are consumed but not scored")
                self._warned = True
            return []
        if not records:
            return []
        table, first_new = self._table(records)
        order = pc.sort_indices(
            table, [("symbol", "ascending"), ("timestamp", "ascending"), ("sequence", "ascending")]
        )
        frame = feats.bars_frame(table.take(order), sort=False)
        x = _matrix(feats.feature_table(frame, self.model.features))
        where = np.empty(len(order), dtype=np.int64)
        where[order.to_numpy()] = np.arange(len(order))
        trainer: Trainer = self.model.trainer
        probs = trainer.predict_up(self.model.fitted, x[where[first_new:]])
        out = []
        for rec, p in zip(records, probs, strict=True):
            out.append(
                {
                    "symbol": rec["symbol"],
                    "sequence": rec["sequence"],
                    "timestamp": rec["timestamp"],
                    "probability": float(p),
                    "model_id": self.model.model_id,
                    "model_version": self.model.version,
                }
            )
        return out

    def _table(self, records: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, int]:
        """The batch's symbols' history rows, then the new bars in arrival order (column-wise,
        prices unscaled), and the row the new bars start at; the history then takes the new bars."""
        symbols = [r["symbol"] for r in records]
        history = [bar for sym in dict.fromkeys(symbols) for bar in self._history.get(sym, ())]
        new = {name: [r[name] for r in records] for name in _NUMERIC}
        new["close"] = [c / self._scale for c in new["close"]]
        columns: dict[str, list[Any]] = {"symbol": [b[0] for b in history] + symbols}
        for i, name in enumerate(_NUMERIC, start=1):
            columns[name] = [b[i] for b in history] + new[name]
        rows = zip(symbols, *(new[n] for n in _NUMERIC), strict=True)
        for bar in rows:
            hist = self._history.get(bar[0])
            if hist is None:
                hist = self._history[bar[0]] = deque(maxlen=feats.LOOKBACK)
            hist.append(bar)
        self._dirty.update(symbols)
        return pa.table(columns), len(history)

    def dirty_keys(self) -> set[str]:
        """Symbols whose history changed since the previous call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    dirty_symbols = dirty_keys

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """``{"version", "symbol", "bars": [[symbol, sequence, start, end, close, vwap, volume,
        trade_count], ...]}``: the symbol's last bars, for the features of its next one."""
        hist = self._history.get(key)
        if not hist:
            return None
        return {"version": SNAPSHOT_VERSION, "symbol": key, "bars": [list(b) for b in hist]}

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by :meth:`snapshot` (unknown versions are ignored: history is
        only a warm start, the features of a symbol's first bars then see no history)."""
        for snap in states:
            if snap.get("version") != SNAPSHOT_VERSION or not isinstance(snap.get("bars"), list):
                continue
            hist: deque[tuple[Any, ...]] = deque(maxlen=feats.LOOKBACK)
            for bar in snap["bars"]:
                hist.append(tuple(bar))
            self._history[str(snap["symbol"])] = hist


def _matrix(features: pa.Table) -> np.ndarray:
    """The features as a 2-D float64 array (rows x features) for the trainer."""
    if features.num_columns == 0:
        return np.zeros((features.num_rows, 0))
    return np.column_stack([features[n].to_numpy() for n in features.column_names]).astype(np.float64)
