"""Load tool and baselines for the SSE gateway: ``python -m tests.perf.bench --help``."""
