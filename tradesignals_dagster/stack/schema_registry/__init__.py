"""A Confluent-Schema-Registry-compatible REST service storing AVRO schemas in SQLite.

Run it with ``python -m tradesignals_dagster.stack.schema_registry --port 0 --db PATH`` or
in-process with :class:`RunningRegistry`. Compatibility is checked by
:mod:`tradesignals_dagster.kafka.compatibility`.
"""

from tradesignals_dagster.stack.schema_registry.errors import RegistryApiError
from tradesignals_dagster.stack.schema_registry.server import (
    RegistryHTTPServer,
    RunningRegistry,
    create_server,
)
from tradesignals_dagster.stack.schema_registry.store import SchemaRegistryStore, SubjectVersion

__all__ = [
    "RegistryApiError",
    "RegistryHTTPServer",
    "RunningRegistry",
    "SchemaRegistryStore",
    "SubjectVersion",
    "create_server",
]
