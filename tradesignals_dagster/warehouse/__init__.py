"""The warehouse: ClickHouse, reached over its HTTP interface with clickhouse-connect.

In production that is a ClickHouse server (``TRADESIGNALS_CLICKHOUSE_URL``). Locally it is the
endpoint in :mod:`tradesignals_dagster.warehouse.endpoint`: one process that owns an on-disk
chdb database and serves the part of ClickHouse's HTTP interface clickhouse-connect uses, so
every component runs the code path it runs against a real server. Every component gets its
client from :func:`tradesignals_dagster.warehouse.client.clickhouse_client`.
"""
