"""Streaming pipelines: stateful processors that turn input topics into output topics."""
