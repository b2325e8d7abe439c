"""Parquet datasets: daily exports of ClickHouse tables to an object store (S3 or a directory),
their Athena DDL, and the errors of that area."""
