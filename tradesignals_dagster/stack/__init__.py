"""The local dev stack: a single-node KRaft Kafka broker run from Maven Central jars and the
project's Confluent-API schema registry service, started and stopped as detached processes.

Entry points are in :mod:`tradesignals_dagster.stack.stack` (``stack_up``, ``stack_down``,
``stack_status``); the broker alone is :class:`tradesignals_dagster.stack.kafka_broker.KafkaBroker`.
"""
