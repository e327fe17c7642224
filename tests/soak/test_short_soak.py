"""The short soak in CI: the real bots, workers and Redis, on test hosts (network namespaces, as
root) or on loopback behind a fault-injecting proxy, under a seeded load with every fault kind
at least once; any violation of the invariants fails the test and prints the report (with each
violating question's story).

The seeds are regression cases: each found a product bug (docs/benchmarks.md, "Soak").
Budgets are generous (the suite runs three test processes at once on two cores); the
invariants are exact.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak.run import Options, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("soak")]

# Seeds that found bugs (docs/benchmarks.md, "Soak"): 1 (a bot killed while Slack failed left its
# questions in silence) and 3 (two answers after a Slack timeout; a second placeholder for a retried
# event). CI runs seed 3, whose run holds every fault kind including the failover; seed 1 is replayed
# with `python -m bench.soak --seed 1 --minutes 0.5 --rate 0.5` (a run takes 5-7 minutes here).
SEEDS = [3]


@pytest.mark.parametrize("seed", SEEDS)
def test_short_soak_has_no_violation(seed: int, tiny_model_dir: Path, tmp_path: Path) -> None:
    result = run(Options(seed=seed, minutes=1.0, rate=0.7, log_dir=tmp_path / "logs", model=tiny_model_dir))
    report = "\n".join(result.lines)  # run() printed it too (pytest shows it with -s or on failure)
    assert result.summary["counts"].get("acknowledged", 0) >= 20, report  # the load really ran
    kinds = {"worker_kill", "bot_kill", "stall", "redis_restart", "partition_worker", "partition_bot", "slack_5xx",
             "slack_429", "slack_timeout", "slack_slow", "socket_disconnect", "redis_maxmemory"}
    if result.summary["hosts"] == "namespaces":  # CI runs as root: test hosts, so these too
        kinds |= {"failover", "slow_link"}
    assert set(result.summary["faults"]) >= kinds, report
    assert result.violations == 0, report
