"""Live scoring: each volume bar in, the promoted model's probability that the symbol's next bar
closes higher out.

Features come from :func:`tradesignals_dagster.ml.features.feature_table`, the function training
uses: for a batch, each symbol's last :data:`~tradesignals_dagster.ml.features.LOOKBACK` bars
(kept in memory and in the pipeline's state topic, so a restart keeps the history) are put before
its new bars, the features of all those rows are computed at once with Arrow, and the rows of
the new bars are scored in one ``predict_proba`` call. The model version is fixed for the life
of the process: the deploy passes the promoted version in ``TRADESIGNALS_MODEL_VERSION`` (part of
the desired state, so promoting a new version redeploys the pipeline).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.trainers import Trainer
from tradesignals_dagster.streaming.processors.base import SourcePosition

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1
_NUMERIC = ("sequence", "start_timestamp", "timestamp", "close", "vwap", "volume", "trade_count")
"""Bar columns after ``symbol``, in :data:`~tradesignals_dagster.ml.features.BAR_COLUMNS` order."""


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
        x = feats.matrix(feats.feature_table(frame, self.model.features))
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
