"""What the tests and the benchmarks share: the Slack fake (Web API), private redis-servers,
worker processes, tiny offline models, generated questions and synthetic explanations.

Importable as `tests.support` from the repository root (pytest's rootdir, or `python -m bench.X`).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
