"""Live scoring with numpy state: each volume bar in, the promoted model's probability that the
symbol's next bar closes higher out.

The features come from :func:`tradesignals_dagster.ml.features.feature_matrix`, the function
training uses. For a poll batch, each symbol's last :data:`~tradesignals_dagster.ml.features.LOOKBACK`
bars (kept in per-symbol slots of two numpy arrays, and in the pipeline's state topic, so a
restart keeps the history) are put before its new bars, all those rows are ordered by symbol,
time and sequence (a stable sort, history first), the features are computed at once and the rows
of the new bars are scored in one ``predict_up`` call. Per bar, Python only reads the record's
fields and builds the output dict.

The model version is fixed for the life of the process: the deploy passes the promoted version
in ``TRADESIGNALS_MODEL_VERSION`` (part of the desired state, so promoting a new version
redeploys the pipeline). The signals and state snapshots equal, bit for bit, those of the first
implementation (Arrow tables and deques of tuples), which the unit tests keep as a reference
(``tests/unit/scoring_reference.py``) and compare on in-order, out-of-order and restored input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.streaming.processors.base import SourcePosition

__all__ = ["BarScorer", "LoadedModel", "ScoringConfig", "load_promoted"]

log = logging.getLogger(__name__)
_INTS = ("sequence", "start_timestamp", "timestamp", "volume", "trade_count")
"""Integer bar fields, the columns of the history's int64 array."""
_FLOATS = ("close", "vwap")
"""Float bar fields (close unscaled), the columns of the history's float64 array."""
_SEQ, _START, _END, _VOLUME, _TRADES = range(5)
_CLOSE, _VWAP = range(2)
_L = feats.LOOKBACK


def _run_ends(values: np.ndarray) -> np.ndarray:
    """The index of the last element of each run of equal values in (non-empty) ``values``."""
    ends = np.flatnonzero(values[1:] != values[:-1])
    return np.append(ends, len(values) - 1)


def _in_time_order(slots: np.ndarray, timestamps: np.ndarray, sequences: np.ndarray) -> bool:
    """Whether the rows of each slot (rows grouped by slot) are ordered by time, then sequence."""
    later = (timestamps[1:] > timestamps[:-1]) | (
        (timestamps[1:] == timestamps[:-1]) & (sequences[1:] >= sequences[:-1])
    )
    return bool(np.all(later | (slots[1:] != slots[:-1])))


SNAPSHOT_VERSION = 1
"""Version of the state snapshots (per symbol: its last bars)."""


class ScoringConfig(BaseModel):
    """``config.yaml`` of a scoring pipeline."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(description="The model scored (a key of the registry's Models section).")


class LoadedModel(BaseModel):
    """A promoted model ready to score: id, version, features, the fitted object and its trainer."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    model_id: str = Field(description="Model id.")
    version: str = Field(description="The promoted version scored with.")
    features: list[str] = Field(description="Feature names, in the order the model was fitted on.")
    fitted: Any = Field(description="The trainer's fitted model.")
    trainer: Any = Field(description="The Trainer that made it (predict_up).")


class BarScorer:
    """The processor: scores bars with ``model`` (None: no promoted version yet, nothing is
    published until one is promoted and the pipeline is redeployed with it)."""

    def __init__(self, model: LoadedModel | None, price_scale: int = 4) -> None:
        self.model = model
        self._scale = 10.0**price_scale
        self._slots: dict[str, int] = {}
        # Slot s holds a symbol's last _len[s] bars, oldest first, at the end of _ints[s] and
        # _floats[s] (rows LOOKBACK - _len[s] to LOOKBACK - 1).
        self._ints = np.zeros((0, _L, len(_INTS)), dtype=np.int64)
        self._floats = np.zeros((0, _L, len(_FLOATS)), dtype=np.float64)
        self._len = np.zeros(0, dtype=np.int64)
        self._dirty: set[str] = set()
        self._warned = False

    def process(
        self,
        records: Sequence[Mapping[str, Any]],
        positions: Sequence[SourcePosition] | None = None,
    ) -> list[dict[str, Any]]:
        """One signal per bar of ``records``, in their order."""
        model = self.model
        if model is None:
            if not self._warned:
                log.warning("no promoted model version: bars are consumed but not scored")
                self._warned = True
            return []
        if not records:
            return []
        n = len(records)
        symbols = [r["symbol"] for r in records]
        sequences = [r["sequence"] for r in records]
        timestamps = [r["timestamp"] for r in records]
        ints = np.empty((n, len(_INTS)), dtype=np.int64)
        ints[:, _SEQ] = sequences
        ints[:, _START] = [r["start_timestamp"] for r in records]
        ints[:, _END] = timestamps
        ints[:, _VOLUME] = [r["volume"] for r in records]
        ints[:, _TRADES] = [r["trade_count"] for r in records]
        floats = np.empty((n, len(_FLOATS)), dtype=np.float64)
        floats[:, _CLOSE] = [r["close"] for r in records]
        floats[:, _CLOSE] /= self._scale
        floats[:, _VWAP] = [r["vwap"] for r in records]
        slots = self._slots_of(symbols)

        # The batch's symbols' history rows (slot by slot, oldest first), then the new bars.
        by_slot = np.sort(slots)
        present = by_slot[_run_ends(by_slot)]
        kept = self._len[present]
        held = np.arange(_L) >= _L - kept[:, None]
        all_slots = np.concatenate([np.repeat(present, kept), slots])
        all_ints = np.concatenate([self._ints[present][held], ints])
        all_floats = np.concatenate([self._floats[present][held], floats])
        first_new = len(all_slots) - n

        # Rows by symbol, then time, then sequence, ties in arrival order (history first), as the
        # training sort orders them. Grouping by symbol (stable) is enough when each symbol's rows
        # already come in time order, the usual case; otherwise a full sort.
        grouped = np.argsort(all_slots, kind="stable")
        grouped_slots = all_slots[grouped]
        ints_grouped = all_ints[grouped]
        if _in_time_order(grouped_slots, ints_grouped[:, _END], ints_grouped[:, _SEQ]):
            order, ordered_slots, ordered_ints = grouped, grouped_slots, ints_grouped
        else:
            order = np.lexsort((all_ints[:, _SEQ], all_ints[:, _END], all_slots))
            ordered_slots, ordered_ints = all_slots[order], all_ints[order]
        ordered_floats = all_floats[order]
        columns = {
            "close": ordered_floats[:, _CLOSE],
            "vwap": ordered_floats[:, _VWAP],
            "volume": ordered_ints[:, _VOLUME],
            "trade_count": ordered_ints[:, _TRADES],
            "start_timestamp": ordered_ints[:, _START],
            "timestamp": ordered_ints[:, _END],
        }
        x_all = feats.feature_matrix(columns, ordered_slots, model.features)
        where = np.empty(len(order), dtype=np.int64)
        where[order] = np.arange(len(order))
        probs = model.trainer.predict_up(model.fitted, x_all[where[first_new:]]).tolist()

        self._keep_last(grouped_slots, ints_grouped, all_floats[grouped], present)
        self._dirty.update(symbols)
        model_id, version = model.model_id, model.version
        return [
            {
                "symbol": symbol,
                "sequence": sequence,
                "timestamp": timestamp,
                "probability": p,
                "model_id": model_id,
                "model_version": version,
            }
            for symbol, sequence, timestamp, p in zip(symbols, sequences, timestamps, probs, strict=True)
        ]

    def _slots_of(self, symbols: list[str]) -> np.ndarray:
        """The slot of each symbol, allocating slots (and growing the arrays) for new ones."""
        try:
            return np.fromiter(map(self._slots.__getitem__, symbols), dtype=np.int64, count=len(symbols))
        except KeyError:
            for symbol in dict.fromkeys(symbols):
                self._slot(symbol)
            return np.fromiter(map(self._slots.__getitem__, symbols), dtype=np.int64, count=len(symbols))

    def _slot(self, symbol: str) -> int:
        slot = self._slots.get(symbol)
        if slot is None:
            slot = self._slots[symbol] = len(self._slots)
            if slot >= len(self._len):
                grow = max(64, len(self._len))
                self._ints = np.concatenate([self._ints, np.zeros((grow, _L, len(_INTS)), np.int64)])
                self._floats = np.concatenate([self._floats, np.zeros((grow, _L, len(_FLOATS)))])
                self._len = np.concatenate([self._len, np.zeros(grow, np.int64)])
        return slot

    def _keep_last(
        self, slots: np.ndarray, ints: np.ndarray, floats: np.ndarray, present: np.ndarray
    ) -> None:
        """Each batch symbol's history becomes its last LOOKBACK rows in arrival order (history
        first, then its new bars), as a deque of maxlen LOOKBACK would keep them. ``slots``,
        ``ints`` and ``floats`` are the batch rows grouped by slot in that order (``present``'s
        order, ascending)."""
        ends = _run_ends(slots)  # the last row of each slot
        rows = ends[:, None] + np.arange(1 - _L, 1)  # its last LOOKBACK rows, some maybe another's
        np.maximum(rows, 0, out=rows)  # (those are beyond the slot's length, never read)
        self._ints[present] = ints[rows]
        self._floats[present] = floats[rows]
        counts = ends.copy()
        counts[1:] -= ends[:-1]
        counts[0] += 1
        self._len[present] = np.minimum(counts, _L)

    def dirty_keys(self) -> set[str]:
        """Symbols whose history changed since the previous call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    dirty_symbols = dirty_keys

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """``{"version", "symbol", "bars": [[symbol, sequence, start, end, close, vwap, volume,
        trade_count], ...]}``: the symbol's last bars, for the features of its next one."""
        slot = self._slots.get(key)
        if slot is None or not self._len[slot]:
            return None
        first = _L - int(self._len[slot])
        ints = self._ints[slot, first:].tolist()
        floats = self._floats[slot, first:].tolist()
        bars = [
            [key, i[_SEQ], i[_START], i[_END], f[_CLOSE], f[_VWAP], i[_VOLUME], i[_TRADES]]
            for i, f in zip(ints, floats, strict=True)
        ]
        return {"version": SNAPSHOT_VERSION, "symbol": key, "bars": bars}

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by :meth:`snapshot` (unknown versions and malformed bars are
        ignored: history is only a warm start, the features of a symbol's first bars then see no
        history)."""
        for snap in states:
            bars = snap.get("bars")
            if snap.get("version") != SNAPSHOT_VERSION or not isinstance(bars, list):
                continue
            last = bars[len(bars) - _L :] if len(bars) > _L else bars
            try:
                ints = np.array([[b[1], b[2], b[3], b[6], b[7]] for b in last], dtype=np.int64)
                floats = np.array([[b[4], b[5]] for b in last], dtype=np.float64)
            except (TypeError, ValueError, IndexError, OverflowError):
                log.warning("state of %s is malformed; its history starts empty", snap.get("symbol"))
                continue
            slot = self._slot(str(snap["symbol"]))
            count = len(last)
            self._ints[slot, _L - count :] = ints.reshape(count, len(_INTS))
            self._floats[slot, _L - count :] = floats.reshape(count, len(_FLOATS))
            self._len[slot] = count


def load_promoted(model_id: str, settings: Any, version: str | None = None) -> LoadedModel | None:
    """The model ``version`` (else the promoted one) from the object store ``settings`` name, or
    None when nothing is promoted yet."""
    from tradesignals_dagster.datasets.store import object_store
    from tradesignals_dagster.ml.store import ModelStore
    from tradesignals_dagster.ml.trainers import trainer_for

    store = ModelStore(object_store(settings), model_id)
    version = version or store.current()
    if version is None:
        return None
    card = store.card(version) or {}
    trainer = trainer_for(str(card.get("trainer", "sklearn")))
    fitted = trainer.loads(store.artifact(version))
    return LoadedModel(
        model_id=model_id, version=version, features=list(card["features"]), fitted=fitted, trainer=trainer
    )
