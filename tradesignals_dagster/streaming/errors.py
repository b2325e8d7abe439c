"""Errors of the pipeline runtime (inputs, outputs, state, runner, replay).

Every class derives from :class:`StreamingError`, itself a :class:`TradesignalsError`, so a
pipeline's ``main`` can log any of them as one structured line and exit with its code. The
messages say what to do: most failures at start-up are a registry that was not applied.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from tradesignals_dagster.errors import TradesignalsError


class StreamingError(TradesignalsError):
    """Base class for every error of the pipeline runtime."""


class PipelineConfigError(StreamingError):
    """The pipeline's registry entry, config.yaml or overrides cannot be run as written."""

    exit_code = 2


class SchemaNotRegisteredError(PipelineConfigError):
    """A topic's schema is not (or not in this version) registered under its subject."""


class TopicMissingError(PipelineConfigError):
    """A topic the pipeline needs does not exist in the cluster."""


class InputError(StreamingError):
    """An input could not be opened or read (bad file, unreachable feed, bad custom class)."""


class RecordFileError(InputError):
    """A record file given to a replay cannot be used as given: missing, not a regular file,
    unreadable, not UTF-8 (the message names the line), an unknown extension, or an output that
    is the input itself. The message starts with the path."""

    exit_code = 2


class OutputFileError(StreamingError):
    """A replay's output could not be written (directory missing or read-only, disk full);
    nothing was left half-written. The message starts with the path."""


class RecordError(StreamingError):
    """One record cannot be turned into a record of its schema (wrong type, missing field...).

    Raised per record by :class:`~tradesignals_dagster.streaming.records.RecordSchema.coerce`;
    the runner dead-letters the record and carries on.
    """


class DeliveryError(StreamingError):
    """The broker did not acknowledge produced records; offsets were not committed."""


class FatalClientError(StreamingError):
    """librdkafka declared a client unusable (a fenced static member or transactional producer,
    an idempotent producer out of sequence). The process exits non-zero so supervision starts
    a fresh client, which takes the static membership or transactional id back."""


class ConsumerFencedError(FatalClientError):
    """The consumer's static membership was fenced (``FENCED_INSTANCE_ID``).

    Seen when the group coordinator's broker dies: librdkafka loses its session, rejoins under
    a new member id for the same ``group.instance.id``, and its own in-flight offset commit
    under the old member id is then refused as fenced, which librdkafka makes fatal. The
    runner starts a new consumer in the same process (a bounded number of times) instead of
    exiting."""


class TransactionError(StreamingError):
    """A Kafka transaction failed; the process exits so a restart resumes from the last commit."""


class StateRestoreError(StreamingError):
    """The processor's state could not be read back from the state topic."""


class DeadLetterStopError(StreamingError):
    """A record was rejected and the pipeline's dead-letter policy is ``stop``.

    Nothing of the batch was committed, so a restart meets the same record again: fix the
    record or switch ``runtime.dead_letter`` back to ``dead_letter``.
    """


class ProcessorError(StreamingError):
    """The transform failed in a way that does not name a single bad record (a bug)."""


def is_fatal(err: Any) -> bool:
    """Whether ``err`` leaves the client unusable. librdkafka raises a fatal error through
    ``error_cb`` (``fatal()`` true) and then hands every later call a ``_FATAL`` error whose own
    ``fatal()`` is false: both count."""
    return bool(err.fatal()) or err.code() == KafkaError._FATAL


def is_fenced_member(err: Any) -> bool:
    """Whether ``err`` is a static consumer fenced for its ``group.instance.id`` (the fatal
    error's code, or the ``_FATAL`` error that carries its text)."""
    return err.code() == KafkaError.FENCED_INSTANCE_ID or "group.instance.id" in err.str()
