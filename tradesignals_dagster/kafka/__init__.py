"""Kafka-side building blocks: Avro schema compatibility, serialisation and the registry client."""
