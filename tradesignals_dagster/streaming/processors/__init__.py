"""Processors: the pure per-record logic of streaming pipelines, independent of Kafka."""
