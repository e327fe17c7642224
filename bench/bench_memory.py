"""Peak memory against the size of the input: a passage's length, and a --jsonl file's lines.

Each measurement is a fresh process (its peak resident set, `ru_maxrss` from `wait4`), so one
run's caches never lower another's peak:

  passage   `explain(question, passage)` for passages of 1k ... 200k characters, twice per length,
            side by side: with the token budget (the default, `QA_TOKEN_BUDGET`) and with every
            window in one batch (`QA_TOKEN_BUDGET=10**9`, what the engine did before the budget);
  jsonl     `qa-explain --jsonl` over 100 ... 10,000 lines (one short question and passage each),
            written as it reads: flat once the first chunk is answered.

Models: a randomly initialised DistilBERT-base-size model built like `bench.bench_engine`'s (its
activations are what grow with a batch), and ../shared/models/minilm-l6-squad2-tiny for the
--jsonl lines when present. Run it alone on the machine.

Usage: python -m bench.bench_memory [--lengths 1000,20000,100000,200000] [--lines 100,1000,10000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import SHARED_MODEL
from bench.bench_engine import build_distilbert_base
from tests.support import ROOT

QUESTION = "Who built the Bell Rock Lighthouse?"
PASSAGE_CHILD = """
import sys
from explain_core import explain
model, length, sample = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], encoding="utf-8").read()
passage = (sample * (length // len(sample) + 1))[:length]
print(explain(sys.argv[4], passage, model=model).windows)
"""
JSONL_CHILD = "from explain_core.cli import main; main()"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
       "PYTHONPATH": str(ROOT)}


def peak(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a child; its peak RSS (MB), its wall time (s) and its stdout's last line."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().decode().splitlines()
    if child.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited with {child.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, lines[-1] if lines else ""


def passage_lengths(model: str, lengths: list[int]) -> None:
    sample = ROOT / "samples" / "lighthouse.txt"
    print(f"\npeak RSS against passage length ({Path(model).name}, one question per process)")
    print("| characters | windows | budget MB | one batch MB | one batch / budget | budget s | one batch s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for length in lengths:
        argv = [sys.executable, "-c", PASSAGE_CHILD, model, str(length), str(sample), QUESTION]
        budget_mb, budget_s, windows = peak(argv, ENV)
        whole_mb, whole_s, _ = peak(argv, {**ENV, "QA_TOKEN_BUDGET": str(10**9)})
        print(f"| {length:,} | {windows} | {budget_mb:.0f} | {whole_mb:.0f} | {whole_mb / budget_mb:.2f} "
              f"| {budget_s:.1f} | {whole_s:.1f} |", flush=True)


def jsonl_lines(model: str, counts: list[int]) -> None:
    print(f"\npeak RSS against --jsonl lines ({Path(model).name})")
    print("| lines | peak MB | s | lines/s |")
    print("| ---: | ---: | ---: | ---: |")
    line = json.dumps({"question": QUESTION, "passage": "The Bell Rock Lighthouse was built by Robert Stevenson."})
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            path = Path(tmp) / f"{count}.jsonl"
            path.write_text((line + "\n") * count, encoding="utf-8")
            mb, seconds, last = peak([sys.executable, "-c", JSONL_CHILD, "--jsonl", str(path), "--model", model], ENV)
            assert "answer" in json.loads(last)
            print(f"| {count:,} | {mb:.0f} | {seconds:.1f} | {count / seconds:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1000,20000,100000,200000")
    parser.add_argument("--lines", default="100,1000,10000")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        distilbert = str(build_distilbert_base(Path(tmp)))
        passage_lengths(distilbert, [int(n) for n in args.lengths.split(",")])
        jsonl_lines(str(SHARED_MODEL) if SHARED_MODEL.exists() else distilbert, [int(n) for n in args.lines.split(",")])
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
