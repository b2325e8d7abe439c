"""Feed inputs of a pipeline (everything but Kafka) and the ``PipelineInput`` base class.

The seed names ``PipelineInput`` as the class custom inputs implement (``module_path`` +
``class_name`` in the registry). The runtime drives an input like this::

    inp = InputClass(spec, ctx)     # spec: the registry's pipeline.input; ctx: InputContext
    inp.open()
    while not stopping and not inp.exhausted:
        batch = inp.read(max_records, timeout_s)   # InputBatch, or a plain list of rows
        ...                                        # coerce, validate, transform, produce
    inp.close()

Rows are mappings named as the output schema's fields (an :class:`InputFailure` in their place
marks something received that could not be parsed) (a feed normalised onto its topic);
unless the class sets ``typed = True`` the runtime coerces them (strings to numbers, decimals
to scaled ints, ISO times to epoch millis) and dead-letters the rows it cannot. ``read`` must
return within about ``timeout_s`` (an empty batch is fine) so that SIGTERM is honoured
promptly. The built-in inputs are ``synthetic`` (:mod:`.synthetic`), ``websocket``
(:mod:`.websocket`) and ``replay`` (:class:`ReplayInput`); ``kafka`` is handled by
:mod:`.kafka_input`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tradesignals_dagster.registry.models import StreamingPipeline, StreamingPipelineInput
from tradesignals_dagster.streaming.confine import custom_module_file
from tradesignals_dagster.streaming.errors import InputError, PipelineConfigError, RecordError
from tradesignals_dagster.streaming.files import BadRow, read_rows
from tradesignals_dagster.streaming.records import to_epoch


@dataclass(frozen=True)
class InputFailure:
    """Something the input received but could not turn into a row (e.g. a non-JSON message)."""

    raw: Any
    error: str


@dataclass
class InputBatch:
    """What one :meth:`PipelineInput.read` returns, in arrival order: rows (mappings), and an
    :class:`InputFailure` wherever something could not be parsed (it is dead-lettered)."""

    records: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def failures(self) -> list[InputFailure]:
        """The unparseable items of the batch."""
        return [r for r in self.records if isinstance(r, InputFailure)]


@dataclass(frozen=True)
class InputContext:
    """What an input may use besides its registry entry."""

    pipeline: StreamingPipeline
    schema: dict[str, Any]
    """Avro schema (JSON) the rows should match: the output topic's."""
    base_dir: Path
    """The pipeline's directory, for relative paths."""
    stop: threading.Event
    """Set when the pipeline is stopping; long waits should watch it."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("tradesignals.streaming"))


class PipelineInput(ABC):
    """Base class of every feed input (see the module docstring for the protocol)."""

    typed: ClassVar[bool] = False
    """True when rows already hold the schema's runtime types (no coercion needed)."""

    def __init__(self, spec: StreamingPipelineInput, ctx: InputContext) -> None:
        self.spec = spec
        self.ctx = ctx

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or open files; called once before the first :meth:`read`."""

    @abstractmethod
    def read(self, max_records: int, timeout_s: float) -> InputBatch | list[Mapping[str, Any]]:
        """Up to ``max_records`` rows, waiting at most about ``timeout_s`` for the first."""

    @property
    def exhausted(self) -> bool:
        """True once a finite input has delivered everything (the pipeline then exits 0)."""
        return False

    def backlog(self) -> int:
        """Rows received but not yet read (reported as the lag metric)."""
        return 0

    @property
    def reconnects(self) -> int:
        """How many times the input had to reconnect (feeds)."""
        return 0

    def describe(self) -> str:
        """A short name of the source for logs and dead-letter headers."""
        return self.spec.type

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


def metadata(spec: StreamingPipelineInput, name: str, default: Any, kind: type) -> Any:
    """``additional_metadata[name]`` as ``kind`` (the registry often holds strings)."""
    value = spec.additional_metadata.get(name, default)
    if value is None or isinstance(value, kind):
        return value
    try:
        if kind is bool:
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        return kind(value)
    except (TypeError, ValueError):
        raise PipelineConfigError(
            f"input.additional_metadata.{name} must be a {kind.__name__}, got {value!r}"
        ) from None


# -- replay -------------------------------------------------------------------------------------


class ReplayInput(PipelineInput):
    """Rows of a Parquet/CSV/JSONL file (``input.path``) at ``input.speed`` x real time.

    Pacing follows the rows' ``timestamp`` field (``additional_metadata.timestamp_field``):
    a row is released when ``(its timestamp - the first one's) / speed`` has elapsed since the
    first row. Without ``speed`` the file is read as fast as the pipeline goes. Rows earlier
    than their predecessor are released at once. The input is exhausted at the end of file.
    """

    def __init__(self, spec: StreamingPipelineInput, ctx: InputContext) -> None:
        super().__init__(spec, ctx)
        if not spec.path:
            raise PipelineConfigError(f"pipeline {ctx.pipeline.key}: a replay input needs input.path")
        self.path = resolve_path(spec.path, ctx.base_dir)
        self.speed = spec.speed
        self.timestamp_field = str(metadata(spec, "timestamp_field", "timestamp", str))
        self._rows: Iterator[Mapping[str, Any] | BadRow] | None = None
        self._next: Mapping[str, Any] | BadRow | None = None
        self._done = False
        self._t0: tuple[float, int] | None = None  # (wall clock, first event time ms)

    def open(self) -> None:
        """Open the file (errors such as a missing file surface here)."""
        if not self.path.is_file():
            raise InputError(f"replay input: {self.path} does not exist")
        self._rows = read_rows(self.path)

    def describe(self) -> str:
        """``replay:<path>``."""
        return f"replay:{self.path}"

    @property
    def exhausted(self) -> bool:
        """True at the end of the file."""
        return self._done

    def _peek(self) -> Mapping[str, Any] | BadRow | None:
        if self._next is None and not self._done:
            if self._rows is None:
                self.open()
            assert self._rows is not None
            self._next = next(self._rows, None)
            if self._next is None:
                self._done = True
        return self._next

    def _due(self, row: Mapping[str, Any] | BadRow) -> float:
        """Wall time at which ``row`` may be released."""
        if self.speed is None or isinstance(row, BadRow):
            return 0.0
        try:
            ts = to_epoch(row[self.timestamp_field], 1000)
        except (KeyError, RecordError, ValueError, TypeError, ArithmeticError):
            return 0.0
        if self._t0 is None:
            self._t0 = (time.monotonic(), ts)
            return 0.0
        wall0, ts0 = self._t0
        return wall0 + max(0, ts - ts0) / 1000.0 / self.speed

    def read(self, max_records: int, timeout_s: float) -> InputBatch:
        """The next rows that are due, up to ``max_records``."""
        batch = InputBatch()
        deadline = time.monotonic() + timeout_s
        while len(batch) < max_records and not self.ctx.stop.is_set():
            row = self._peek()
            if row is None:
                break
            due = self._due(row)
            now = time.monotonic()
            if due > now:
                if len(batch) or now >= deadline:
                    break
                time.sleep(min(due, deadline) - now)
                continue
            self._next = None
            batch.records.append(InputFailure(row.raw, row.error) if isinstance(row, BadRow) else row)
        return batch


def resolve_path(path: str, base_dir: Path) -> Path:
    """``path`` as given if absolute or present from the working directory, else under ``base_dir``."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return base_dir / candidate


# -- custom inputs and the factory ----------------------------------------------------------------


def load_input_class(module_path: str, class_name: str, base_dir: Path) -> type[PipelineInput]:
    """The ``PipelineInput`` subclass ``class_name`` of ``module_path``.

    ``module_path`` is a dotted module name or a relative ``.py`` path, both resolved only
    inside the pipeline's directory ``base_dir`` (see :mod:`.confine`): a custom input cannot
    load code from anywhere else on the machine.
    """
    file = custom_module_file(module_path, base_dir)
    try:
        name = f"tradesignals_custom_input_{abs(hash(str(file)))}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise InputError(f"cannot load custom input module from {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"cannot import custom input module {module_path!r}: {type(exc).__name__}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise InputError(f"module {module_path!r} has no class {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, PipelineInput)):
        raise InputError(
            f"{module_path}.{class_name} must subclass tradesignals_dagster.streaming.inputs.PipelineInput"
        )
    return cls


def build_input(pipeline: StreamingPipeline, ctx: InputContext) -> PipelineInput:
    """The feed input the registry describes for ``pipeline`` (not for ``kafka`` inputs)."""
    spec = pipeline.input
    if spec.type == "custom" or (spec.type != "kafka" and spec.module_path and spec.class_name):
        if not (spec.module_path and spec.class_name):
            raise PipelineConfigError(
                f"pipeline {pipeline.key}: a custom input needs input.module_path and input.class_name"
            )
        return load_input_class(spec.module_path, spec.class_name, ctx.base_dir)(spec, ctx)
    if spec.type == "synthetic":
        from tradesignals_dagster.streaming.synthetic import SyntheticInput

        return SyntheticInput(spec, ctx)
    if spec.type == "websocket":
        from tradesignals_dagster.streaming.websocket import WebsocketInput

        return WebsocketInput(spec, ctx)
    if spec.type == "replay":
        return ReplayInput(spec, ctx)
    raise PipelineConfigError(f"pipeline {pipeline.key}: input type {spec.type!r} is not a feed input")
