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

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from tradesignals_dagster.ml import features as feats
from tradesignals_dagster.ml.trainers import Trainer
from tradesignals_dagster.streaming.processors.base import SourcePosition

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1
_NUMERIC = ("sequence", "start_timestamp", "timestamp", "close", "vwap", "volume", "trade_count")


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
        rows, new_at = self._rows(records)
        frame = feats.bars_frame(pa.table(rows), sort=False)
        x = feats.matrix(feats.feature_table(frame, self.model.features))
        trainer: Trainer = self.model.trainer
        probs = trainer.predict_up(self.model.fitted, x[new_at])
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

    def _bar(self, rec: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            rec["symbol"],
            int(rec["sequence"]),
            int(rec["start_timestamp"]),
            int(rec["timestamp"]),
            rec["close"] / self._scale,
            float(rec["vwap"]),
            float(rec["volume"]),
            float(rec["trade_count"]),
        )

    def _rows(self, records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[Any]], list[int]]:
        """Columns of history + new bars grouped by symbol, and, for each record in order, the
        row it landed on; the history is then advanced by the new bars."""
        by_symbol: dict[str, list[int]] = {}
        for i, rec in enumerate(records):
            by_symbol.setdefault(rec["symbol"], []).append(i)
        bars: list[tuple[Any, ...]] = []
        new_at = [0] * len(records)
        for symbol, idxs in by_symbol.items():
            hist = self._history.setdefault(symbol, deque(maxlen=feats.LOOKBACK))
            bars.extend(hist)
            for i in idxs:
                bar = self._bar(records[i])
                new_at[i] = len(bars)
                bars.append(bar)
                hist.append(bar)
            self._dirty.add(symbol)
        columns = dict(zip(feats.BAR_COLUMNS, map(list, zip(*bars, strict=True)), strict=True))
        return columns, new_at

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
