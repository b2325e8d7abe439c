"""Avro JSON equivalents of registry/schemas/option_trades{,_aggs}.yaml, for unit tests.

The registry's loader translates the YAML notation (``logical_type``/``precision``/``scale`` on
the field) into exactly these dicts; tests use them directly so they don't depend on it.
"""

from __future__ import annotations

import copy
from typing import Any

DECIMAL_12_4: dict[str, Any] = {
    "type": "bytes",
    "logicalType": "decimal",
    "precision": 12,
    "scale": 4,
}
TIMESTAMP_MILLIS: dict[str, Any] = {"type": "long", "logicalType": "timestamp-millis"}

OPTION_TRADES: dict[str, Any] = {
    "type": "record",
    "name": "OptionTrades",
    "namespace": "option_trades",
    "doc": "One option trade as printed by the market feed.",
    "fields": [
        {"name": "trade_id", "type": "string", "min_length": 1, "max_length": 64},
        {"name": "symbol", "type": "string", "min_length": 1, "max_length": 32},
        {"name": "underlying", "type": "string", "default": ""},
        {"name": "timestamp", "type": dict(TIMESTAMP_MILLIS)},
        {"name": "price", "type": dict(DECIMAL_12_4)},
        {"name": "size", "type": "int"},
        {"name": "oi", "type": "int", "default": 0},
    ],
}

OPTION_TRADES_AGGS: dict[str, Any] = {
    "type": "record",
    "name": "OptionTradesAggs",
    "namespace": "option_trades_aggs",
    "doc": "Option trades aggregated by symbol into bars of equal traded volume.",
    "fields": [
        {"name": "symbol", "type": "string", "min_length": 1, "max_length": 32},
        {"name": "sequence", "type": "long"},
        {"name": "start_timestamp", "type": dict(TIMESTAMP_MILLIS)},
        {"name": "timestamp", "type": dict(TIMESTAMP_MILLIS)},
        {"name": "open", "type": dict(DECIMAL_12_4)},
        {"name": "high", "type": dict(DECIMAL_12_4)},
        {"name": "low", "type": dict(DECIMAL_12_4)},
        {"name": "close", "type": dict(DECIMAL_12_4)},
        {"name": "volume", "type": "long"},
        {"name": "vwap", "type": "double"},
        {"name": "trade_count", "type": "int"},
        {"name": "oi", "type": "int"},
        {"name": "price", "type": dict(DECIMAL_12_4)},
    ],
}


def option_trades(**changes: Any) -> dict[str, Any]:
    """A deep copy of OPTION_TRADES, with top-level keys replaced (for schema-evolution tests)."""
    schema = copy.deepcopy(OPTION_TRADES)
    schema.update(changes)
    return schema
