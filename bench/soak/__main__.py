"""`python -m bench.soak --seed N --minutes M --rate R`: one soak run; exit status 1 on any violation."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.soak.run import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the load lasts (faults within it)")
    parser.add_argument("--rate", type=float, default=1.0, help="questions per second (Poisson arrivals)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a QA checkpoint folder (default: the tests' tiny BERT, built once)")
    parser.add_argument("--logs", type=Path, help="where the processes' logs go (default: a new temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the report's figures here")
    parser.add_argument("--loopback", action="store_true",
                        help="run on loopback behind fault proxies even where namespaces can be made")
    args = parser.parse_args(argv)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="qa-soak-"))
    print(f"soak: logs in {logs}", flush=True)
    result = run(Options(seed=args.seed, minutes=args.minutes, rate=args.rate, log_dir=logs, model=args.model,
                         workers=args.workers, json_path=args.json, loopback=args.loopback))
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
