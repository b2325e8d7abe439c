"""Event-time windows per key: tumbling and hopping, grace period, watermark per partition.

A window ``[start, start + size_ms)`` of a key collects the records whose event time (the
``time_field``, epoch ms) falls in it. Windows start at multiples of ``hop_ms`` (tumbling:
``hop_ms == size_ms``, so each record is in exactly one window; hopping: in ``size_ms /
hop_ms`` windows).

**Watermark.** Each source partition has a watermark: the highest event time seen on it. A
key's windows follow the partition of the record that opened them (the message key decides
the partition, so a key stays on one). A window *closes* - its result is emitted - as soon as
the watermark reaches ``end + grace_ms``. Closing happens record by record, not at batch
ends, so the outputs never depend on how the input was batched (a replay after a crash makes
the same results).

**Late records.** A record whose window has closed (``end + grace_ms <= watermark`` when it
arrives) is handled by ``late``:

* ``dead_letter`` - returned as a :class:`~.processors.base.Reject` (to the DLQ topic);
* ``drop`` - not applied, counted in :attr:`EventTimeWindows.late_dropped`;
* ``update`` - applied to the closed window, whose result is emitted again with ``revision``
  one higher (the identity includes the revision). Closed windows are kept for this for
  ``retain_ms`` past their close; later than that a record is dropped and counted.

A hopping record late for some windows but not others goes into the open ones; its late part
follows the policy, except that ``dead_letter`` only rejects a record no open window took (the
late part is counted in ``late_dropped``).

**State.** Snapshots go through the pipeline's state topic like volume bars': one per key
(open and retained windows, ``positions`` of its partition) plus one per source partition
(key ``__partition__/<p>``: watermark and last applied offset). With positions, a record at or
below its partition's last applied offset is skipped, so replaying after a restore is
idempotent. Aggregates are JSON lists, owned by the :class:`Aggregation`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tradesignals_dagster.errors import TradesignalsError
from tradesignals_dagster.streaming.processors.base import Reject, SourcePosition

SNAPSHOT_VERSION = 1
PARTITION_PREFIX = "__partition__/"
LatePolicy = Literal["dead_letter", "drop", "update"]


class WindowConfig(BaseModel):
    """Window settings as written in a pipeline's config.yaml (``window:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size_ms: int = Field(gt=0, description="Window length in milliseconds of event time.")
    hop_ms: int | None = Field(
        None,
        gt=0,
        description="Distance between window starts; None (or size_ms) makes tumbling windows, "
        "smaller makes hopping windows (size_ms must be a multiple of it).",
    )
    grace_ms: int = Field(
        0, ge=0, description="How long past its end (in watermark time) a window still takes records."
    )
    late: LatePolicy = Field(
        "dead_letter",
        description="Records later than the grace: dead_letter (to the DLQ), drop (counted) or "
        "update (the closed window is re-emitted with revision + 1).",
    )
    retain_ms: int = Field(
        60_000,
        ge=0,
        description="late=update only: how long past its close a window is kept for updates.",
    )

    @model_validator(mode="after")
    def _hop_divides_size(self) -> WindowConfig:
        hop = self.hop_ms or self.size_ms
        if hop > self.size_ms or self.size_ms % hop:
            raise ValueError(f"hop_ms {hop} must divide size_ms {self.size_ms} (and not exceed it)")
        return self

    @property
    def hop(self) -> int:
        """The distance between window starts (``size_ms`` for tumbling windows)."""
        return self.hop_ms or self.size_ms


class WindowError(TradesignalsError):
    """A window snapshot is malformed or was made with other window settings."""


class Aggregation(Protocol):
    """What a window computes: a JSON list accumulator and the record it becomes."""

    def start(self, record: Mapping[str, Any]) -> list[Any]:
        """A new accumulator holding ``record`` (ValueError/TypeError/KeyError: reject it)."""
        ...

    def add(self, acc: list[Any], record: Mapping[str, Any]) -> None:
        """Add ``record`` to ``acc`` in place (same errors as :meth:`start`, ``acc`` unchanged)."""
        ...

    def result(self, key: str, start: int, end: int, acc: list[Any], revision: int) -> dict[str, Any]:
        """The output record of a closed window."""
        ...


class _Key:
    """One key's windows: ``open`` and (late=update) ``closed`` start -> [acc, revision]."""

    __slots__ = ("closed", "open", "partition")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.open: dict[int, list[Any]] = {}
        self.closed: dict[int, list[Any]] = {}


class EventTimeWindows:
    """A processor: windows of ``aggregation`` per ``key_field`` over ``time_field``."""

    def __init__(
        self, config: WindowConfig, aggregation: Aggregation, *, key_field: str, time_field: str
    ) -> None:
        self.config = config
        self.aggregation = aggregation
        self.key_field = key_field
        self.time_field = time_field
        self.late_dropped = 0
        self._keys: dict[str, _Key] = {}
        self._watermarks: dict[int, int] = {}
        self._offsets: dict[int, int] = {}
        self._heaps: dict[int, list[tuple[int, str, int]]] = {}
        self._dirty: set[str] = set()

    # -- processing -------------------------------------------------------------------------------

    def process(
        self, records: Sequence[Mapping[str, Any]], positions: Sequence[SourcePosition] | None = None
    ) -> list[Any]:
        """Apply ``records`` in order; return the windows they closed (and Rejects)."""
        out: list[Any] = []
        pairs: Iterable[tuple[Mapping[str, Any], SourcePosition | None]] = (
            zip(records, repeat(None)) if positions is None else zip(records, positions, strict=True)
        )
        if self.config.hop == self.config.size_ms:
            return self._tumbling(pairs, out)
        for record, pos in pairs:
            part = 0
            if pos is not None:
                part, offset = pos
                last = self._offsets.get(part)
                if last is not None and offset <= last:
                    continue
                self._offsets[part] = offset
            self._dirty.add(PARTITION_PREFIX + str(part))
            reason = self._apply(record, part, out)
            if reason is not None:
                out.append(Reject(record, reason, pos, "LateOrInvalidRecord"))
        return out

    def _tumbling(
        self, pairs: Iterable[tuple[Mapping[str, Any], SourcePosition | None]], out: list[Any]
    ) -> list[Any]:
        """:meth:`process` for tumbling windows (one window per record): the same rules as
        :meth:`_apply`, with the per-record work inlined (this is the hot loop of time bars)."""
        size, grace = self.config.size_ms, self.config.grace_ms
        kf, tf = self.key_field, self.time_field
        keys, offsets, wms, dirty, heaps = (
            self._keys,
            self._offsets,
            self._watermarks,
            self._dirty,
            self._heaps,
        )
        agg_start, agg_add = self.aggregation.start, self.aggregation.add
        parts: set[int] = set()
        cur: int | None = None
        wm: int | None = None
        for record, pos in pairs:
            part = 0
            if pos is not None:
                part, offset = pos
                last = offsets.get(part)
                if last is not None and offset <= last:
                    continue
                offsets[part] = offset
            if part != cur:
                cur, wm = part, wms.get(part)
                parts.add(part)
            key, ts = record.get(kf), record.get(tf)
            if key.__class__ is not str or ts.__class__ is not int:
                reason = self._apply(record, part, out)  # says what is missing or wrong
                out.append(Reject(record, reason or "bad record", pos, "LateOrInvalidRecord"))
                wm = wms.get(part)
                continue
            start = ts - ts % size
            state = keys.get(key)
            if wm is not None and start + size + grace <= wm:
                reason = self._late(key, state, part, record, [start], False, out)
                if reason is not None:
                    out.append(Reject(record, reason, pos, "LateOrInvalidRecord"))
                continue
            if state is None:
                state = keys[key] = _Key(part)
            acc = state.open.get(start)
            try:
                if acc is None:
                    state.open[start] = [agg_start(record), 0]
                    heapq.heappush(self._heap(state.partition), (start + size + grace, key, start))
                else:
                    agg_add(acc[0], record)
            except (KeyError, TypeError, ValueError) as exc:
                reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
                out.append(Reject(record, reason, pos, "LateOrInvalidRecord"))
                continue
            dirty.add(key)
            if wm is None or ts > wm:
                wms[part] = wm = ts
                heap = heaps.get(part)
                if heap and heap[0][0] <= ts:
                    self._close(part, ts, out)
        for part in parts:
            dirty.add(PARTITION_PREFIX + str(part))
        return out

    def _apply(self, record: Mapping[str, Any], part: int, out: list[Any]) -> str | None:
        """Apply one record; the reason it is rejected, or None."""
        try:
            key, ts = record[self.key_field], record[self.time_field]
        except KeyError as exc:
            return f"missing field {exc}"
        if not isinstance(key, str) or ts.__class__ is not int:
            return f"{self.key_field} must be a string and {self.time_field} an int, got {key!r}, {ts!r}"
        cfg = self.config
        wm = self._watermarks.get(part)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(part)
        took, late = False, []
        first = ts - ts % cfg.hop
        for start in range(first, ts - cfg.size_ms, -cfg.hop):
            if wm is not None and start + cfg.size_ms + cfg.grace_ms <= wm:
                late.append(start)
                continue
            acc = state.open.get(start)
            try:
                if acc is None:
                    state.open[start] = [self.aggregation.start(record), 0]
                    heapq.heappush(
                        self._heap(state.partition), (start + cfg.size_ms + cfg.grace_ms, key, start)
                    )
                else:
                    self.aggregation.add(acc[0], record)
            except (KeyError, TypeError, ValueError) as exc:
                return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            took = True
        self._dirty.add(key)
        reason = self._late(key, state, part, record, late, took, out) if late else None
        if wm is None or ts > wm:
            self._watermarks[part] = ts
            self._close(part, ts, out)
        return reason

    def _late(
        self,
        key: str,
        state: _Key | None,
        part: int,
        record: Mapping[str, Any],
        starts: list[int],
        took: bool,
        out: list[Any],
    ) -> str | None:
        """Handle the windows ``record`` is too late for, by the late policy."""
        cfg = self.config
        if cfg.late == "update":
            for start in starts:
                entry = state.closed.get(start) if state is not None else None
                if entry is None:
                    self.late_dropped += 1
                    continue
                try:
                    self.aggregation.add(entry[0], record)
                except (KeyError, TypeError, ValueError) as exc:
                    return str(exc)
                entry[1] += 1
                out.append(self.aggregation.result(key, start, start + cfg.size_ms, entry[0], entry[1]))
            return None
        if cfg.late == "dead_letter" and not took:
            wm = self._watermarks.get(part)
            return (
                f"late record: {self.time_field} {record[self.time_field]} is past the grace of window "
                f"[{starts[0]}, {starts[0] + cfg.size_ms}) (watermark {wm}, grace_ms {cfg.grace_ms})"
            )
        self.late_dropped += 1
        return None

    def _heap(self, part: int) -> list[tuple[int, str, int]]:
        heap = self._heaps.get(part)
        if heap is None:
            heap = self._heaps[part] = []
        return heap

    def _close(self, part: int, wm: int, out: list[Any]) -> None:
        """Emit the windows of partition ``part`` whose close time ``wm`` has reached."""
        heap = self._heaps.get(part)
        cfg = self.config
        while heap and heap[0][0] <= wm:
            _, key, start = heapq.heappop(heap)
            state = self._keys[key]
            entry = state.open.pop(start, None)
            if entry is None:
                continue
            out.append(self.aggregation.result(key, start, start + cfg.size_ms, entry[0], entry[1]))
            self._dirty.add(key)
            if cfg.late == "update":
                state.closed[start] = entry
        if cfg.late == "update":
            horizon = wm - cfg.size_ms - cfg.grace_ms - cfg.retain_ms
            for key in self._dirty:
                st = self._keys.get(key)
                if st is not None and st.closed:
                    for start in [s for s in st.closed if s < horizon]:
                        del st.closed[start]

    def flush(self) -> list[dict[str, Any]]:
        """Close every open window now (end of a finite input, tests); they are emitted in
        close-time order."""
        out: list[Any] = []
        for part in sorted(self._heaps):
            self._close(part, max(c for c, _, _ in self._heaps[part]) if self._heaps[part] else 0, out)
        return out

    # -- state --------------------------------------------------------------------------------------

    def dirty_keys(self) -> set[str]:
        """Keys (and partition entries) whose snapshot changed since the previous call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def snapshot(self, key: str) -> dict[str, Any] | None:
        """JSON state of ``key`` (a key, or ``__partition__/<p>``), None when it has none."""
        if key.startswith(PARTITION_PREFIX):
            part = int(key[len(PARTITION_PREFIX) :])
            if part not in self._watermarks:
                return None
            offset = self._offsets.get(part)
            return {
                "version": SNAPSHOT_VERSION,
                "kind": "partition",
                "partition": part,
                "watermark": self._watermarks[part],
                "positions": [] if offset is None else [[part, offset]],
            }
        st = self._keys.get(key)
        if st is None:
            return None
        cfg = self.config
        return {
            "version": SNAPSHOT_VERSION,
            "kind": "key",
            "key": key,
            "window": [cfg.size_ms, cfg.hop],
            "partition": st.partition,
            "positions": [[st.partition, self._offsets[st.partition]]]
            if st.partition in self._offsets
            else [],
            "open": [[s, e[0], e[1]] for s, e in sorted(st.open.items())],
            "closed": [[s, e[0], e[1]] for s, e in sorted(st.closed.items())],
        }

    def restore(self, states: Iterable[Mapping[str, Any]]) -> None:
        """Load snapshots made by :meth:`snapshot` (replacing those keys' and partitions' state)."""
        cfg = self.config
        for snap in states:
            try:
                if snap["version"] != SNAPSHOT_VERSION:
                    raise WindowError(f"window snapshot version {snap['version']!r} is not supported")
                if snap["kind"] == "partition":
                    part = int(snap["partition"])
                    self._watermarks[part] = int(snap["watermark"])
                    for p, o in snap["positions"]:
                        self._offsets[int(p)] = int(o)
                    continue
                if list(snap["window"]) != [cfg.size_ms, cfg.hop]:
                    raise WindowError(
                        f"snapshot of {snap['key']!r} was made with windows {snap['window']} "
                        f"(size_ms, hop_ms), the config says {[cfg.size_ms, cfg.hop]}"
                    )
                st = _Key(int(snap["partition"]))
                st.open = {int(s): [acc, int(r)] for s, acc, r in snap["open"]}
                st.closed = {int(s): [acc, int(r)] for s, acc, r in snap["closed"]}
                key = str(snap["key"])
            except WindowError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise WindowError(f"window snapshot is malformed: {type(exc).__name__}: {exc}") from exc
            self._keys[key] = st
            heap = self._heap(st.partition)
            for start in st.open:
                heapq.heappush(heap, (start + cfg.size_ms + cfg.grace_ms, key, start))
            self._dirty.discard(key)
