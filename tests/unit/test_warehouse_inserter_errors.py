"""How the inserter classifies ClickHouse's answers: no answer and known-transient codes are
retried (RetryLater), an error without a code is retried only a bounded number of times by the
sink (UnclassifiedError), credentials or a missing table stop it (WarehouseError)."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from tradesignals_dagster.warehouse.errors import WarehouseError
from tradesignals_dagster.warehouse.inserter import Batch, Inserter, RetryLater, UnclassifiedError

SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}


class Refusing:
    """A ClickHouse client whose every insert fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def raw_insert(self, *args: Any, **kwargs: Any) -> None:
        raise self.error


def _insert(error: Exception) -> None:
    inserter = Inserter(Refusing(error), "db.t", "topic", {"n"}, lambda _id: SCHEMA)  # type: ignore[arg-type]
    value = b"\x00" + (1).to_bytes(4, "big") + b"\x02"
    inserter.insert(0, Batch([5], [value], [b"id"]))


def _coded(message: str, code: int) -> DatabaseError:
    exc = DatabaseError(message)
    exc.code = code
    return exc


def test_an_error_without_a_code_is_unclassified() -> None:
    with pytest.raises(UnclassifiedError, match="without a ClickHouse error code"):
        _insert(DatabaseError("HTTP 502 from a proxy"))


def test_no_answer_and_transient_codes_are_retried_as_is() -> None:
    with pytest.raises(RetryLater) as no_answer:
        _insert(OperationalError("connection refused"))
    assert not isinstance(no_answer.value, UnclassifiedError)
    with pytest.raises(RetryLater) as busy:
        _insert(_coded("too many parts", 252))
    assert not isinstance(busy.value, UnclassifiedError)


def test_bad_credentials_stop_the_sink() -> None:
    with pytest.raises(WarehouseError, match="code 516") as refused:
        _insert(_coded("authentication failed", 516))
    assert not isinstance(refused.value, RetryLater)
