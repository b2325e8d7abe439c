"""The names and numbers of the registry, held to the rules of the systems that receive them.

A topic name Kafka would refuse, or a pipeline id such as ``../../x`` that becomes a directory
name, a consumer group and a Dagster asset key, must fail ``validate`` rather than ``apply`` or,
worse, succeed somewhere unexpected. Each rule is a function returning the reason a value is
refused (``None`` when it is fine), and an ``Annotated`` type for pydantic models, so the
registry, future table and dataset ids, and runtime code can share them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

TOPIC_NAME_MAX = 249
"""Kafka's own limit on topic names."""
SAFE_ID_MAX = 128
MAX_PARTITIONS = 10_000
"""Far above what one topic should have; Kafka's hard limit is the int32 range."""
INT16_MAX = 32_767
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_SAFE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_SUBJECT = re.compile(r"[A-Za-z0-9._:-]+")


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic name, or ``None``.

    Kafka's rules: 1 to 249 characters from ``[a-zA-Z0-9._-]``, and not ``.`` or ``..``.
    """
    if not name:
        return "a topic name may not be empty"
    if len(name) > TOPIC_NAME_MAX:
        return f"a topic name has at most {TOPIC_NAME_MAX} characters (Kafka's limit), this one {len(name)}"
    if not _TOPIC_CHARS.fullmatch(name):
        return "a topic name may only use letters, digits, '.', '_' and '-' (Kafka's rule)"
    if name in (".", ".."):
        return "'.' and '..' are not allowed as topic names (Kafka's rule)"
    return None


def safe_id_problem(name: str, what: str = "an id") -> str | None:
    """Why ``name`` is not a safe identifier, or ``None``.

    Safe identifiers become directory names, consumer groups and asset keys: they start with a
    letter, then letters, digits, ``_`` and ``-``, at most :data:`SAFE_ID_MAX` characters. No
    ``/``, ``.``, spaces or control characters, so they can never name a path outside their
    parent directory.
    """
    if not name:
        return f"{what} may not be empty"
    if len(name) > SAFE_ID_MAX:
        return f"{what} has at most {SAFE_ID_MAX} characters, this one {len(name)}"
    if not _SAFE_ID.fullmatch(name):
        return f"{what} must start with a letter and use only letters, digits, '_' and '-'"
    return None


def subject_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable schema registry subject, or ``None``."""
    if not name or len(name) > 255 or not _SUBJECT.fullmatch(name):
        return "a subject has 1 to 255 characters from letters, digits, '.', '_', ':' and '-'"
    return None


def _raise_on(check: Callable[[str], str | None]) -> AfterValidator:
    def validate(value: str) -> str:
        reason = check(value)
        if reason is not None:
            raise ValueError(reason)
        return value

    return AfterValidator(validate)


TopicName = Annotated[str, _raise_on(topic_name_problem)]
"""A string that Kafka accepts as a topic name (also used for consumer groups and schema ids)."""
SafeId = Annotated[str, _raise_on(safe_id_problem)]
"""A pipeline, table or dataset id: safe as a directory name, consumer group and asset key."""
Subject = Annotated[str, _raise_on(subject_problem)]
"""A schema registry subject name."""
