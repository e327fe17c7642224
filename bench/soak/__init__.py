"""The seeded chaos soak: the real processes (bots, workers, Redis) on test hosts, under a seeded
load and seeded faults, checked against the promise "every question ends in exactly one visible
outcome, with the right answer". `python -m bench.soak --help`; docs/benchmarks.md ("Soak").
"""
