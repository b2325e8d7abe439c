"""Tradesignals on Dagster: a YAML registry of Kafka topics, Avro schemas and pipelines."""

__version__ = "0.1.0"
