"""Servers the benchmark compares the gateway with (see docs/performance.md)."""
