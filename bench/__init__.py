"""Benchmarks: run each alone, from the repository root, as `python -m bench.NAME` (see docs/benchmarks.md)."""
from tests.support import ROOT

# The real small QA model beside the repository (not in a user's clone: the benches fall back or skip).
SHARED_MODEL = ROOT.parent / "shared" / "models" / "minilm-l6-squad2-tiny"
