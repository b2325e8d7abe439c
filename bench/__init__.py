"""Benchmarks (``make bench``): measured figures beside each goal. Never run by ``make test``."""
