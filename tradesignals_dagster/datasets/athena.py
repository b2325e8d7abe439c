"""Athena's ``CREATE EXTERNAL TABLE`` for a dataset, with partition projection over ``dt``.

Partition projection lets Athena compute the day partitions from the table's properties
(``dt`` from ``start_date`` to ``NOW``, one per day) instead of ``MSCK REPAIR`` or a Glue
crawler, so a newly exported day is queryable at once. Column types come from the Avro schema
(through the same Arrow schema the Parquet files have): decimals keep precision and scale,
timestamps are ``timestamp`` (Parquet stores them as UTC instants).
"""

from __future__ import annotations

import pyarrow as pa

from tradesignals_dagster.datasets.errors import InvalidDatasetInput
from tradesignals_dagster.datasets.spec import DatasetSpec


def athena_type(dtype: pa.DataType) -> str:
    """The Athena (Hive DDL) type of an Arrow type of a dataset column."""
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    simple = {
        pa.string(): "string",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.bool_(): "boolean",
        pa.binary(): "binary",
        pa.date32(): "date",
    }
    if dtype in simple:
        return simple[dtype]
    raise InvalidDatasetInput(f"Arrow type {dtype} has no Athena type here")


def athena_ddl(spec: DatasetSpec, location: str, *, database: str = "tradesignals") -> str:
    """The statement for ``spec`` with its data at ``location`` (``s3://bucket/prefix/<dataset>/``)."""
    location = location.rstrip("/") + "/"
    columns = ",\n".join(f"  `{f.name}` {athena_type(f.type)}" for f in spec.schema)
    ds = spec.dataset
    end = ds.end_date.isoformat() if ds.end_date else "NOW"
    comment = (ds.doc or f"Daily export of ClickHouse table {spec.table}").replace("'", "''")
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{spec.key}` (\n{columns}\n)\n"
        f"COMMENT '{comment}'\n"
        "PARTITIONED BY (`dt` string)\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{location}'\n"
        "TBLPROPERTIES (\n"
        f"  'parquet.compression' = '{ds.compression.upper()}',\n"
        "  'projection.enabled' = 'true',\n"
        "  'projection.dt.type' = 'date',\n"
        "  'projection.dt.format' = 'yyyy-MM-dd',\n"
        f"  'projection.dt.range' = '{ds.start_date.isoformat()},{end}',\n"
        "  'projection.dt.interval' = '1',\n"
        "  'projection.dt.interval.unit' = 'DAYS',\n"
        f"  'storage.location.template' = '{location}dt=${{dt}}/'\n"
        ");"
    )
