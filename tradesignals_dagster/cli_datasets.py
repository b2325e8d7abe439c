"""``tradesignals athena-ddl <dataset>`` and ``tradesignals datasets export <dataset> --day D``.

Both call what the Dagster ``datasets/<id>`` assets call: the registry loader,
:func:`~tradesignals_dagster.datasets.spec.dataset_spec`, the object store from the settings
and :func:`~tradesignals_dagster.datasets.export.export_day`.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from tradesignals_dagster.cli import command, common_options
from tradesignals_dagster.datasets.athena import athena_ddl
from tradesignals_dagster.datasets.errors import InvalidDatasetInput
from tradesignals_dagster.datasets.spec import dataset_spec
from tradesignals_dagster.datasets.store import object_store
from tradesignals_dagster.registry.application import load_app
from tradesignals_dagster.settings import Settings


def add_dataset_parsers(sub: Any) -> None:
    """Add ``athena-ddl`` and ``datasets export``."""
    common = common_options()
    ddl = sub.add_parser("athena-ddl", parents=[common], help="print a dataset's CREATE EXTERNAL TABLE")
    ddl.add_argument("dataset", help="dataset id (a key of Datasets)")
    ddl.add_argument(
        "--database", default="tradesignals", help="Athena/Glue database (default: tradesignals)"
    )
    datasets = sub.add_parser("datasets", parents=[common], help="export Parquet datasets")
    datasets.add_argument("action", choices=["export"])
    datasets.add_argument("dataset", help="dataset id (a key of Datasets)")
    datasets.add_argument("--day", required=True, help="UTC day to export, YYYY-MM-DD")
    datasets.add_argument("--json", action="store_true", help="print the result as JSON")


@command("athena-ddl")
def cmd_athena_ddl(args: argparse.Namespace, settings: Settings) -> int:
    """Print the statement; the location is the configured object store's dataset folder."""
    spec = dataset_spec(load_app(settings), args.dataset)
    store = object_store(settings)
    print(athena_ddl(spec, store.uri(spec.key), database=args.database))
    return 0


@command("datasets")
def cmd_datasets(args: argparse.Namespace, settings: Settings) -> int:
    """``datasets export``: one day, as the asset's partition would be."""
    from tradesignals_dagster.datasets.export import export_day
    from tradesignals_dagster.warehouse.client import clickhouse_client

    try:
        day = date.fromisoformat(args.day)
    except ValueError as exc:
        raise InvalidDatasetInput(f"--day '{args.day}' is not a date (YYYY-MM-DD)") from exc
    spec = dataset_spec(load_app(settings), args.dataset)
    spec.check_day(day)
    result = export_day(clickhouse_client(settings), object_store(settings), spec, day)
    meta = result.metadata() | {"file_uris": result.files}
    print(json.dumps(meta, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in meta.items()))
    return 0
