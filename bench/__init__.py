"""Benchmarks: run each alone, from the repository root, as `python -m bench.NAME` (see docs/benchmarks.md)."""
