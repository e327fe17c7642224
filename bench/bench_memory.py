"""Peak memory on real passages: `qa-explain --jsonl` over SQuAD lines, one long document, and a
worker answering 8 long questions at once, for a 6-layer and two base-size models.

Each figure is a fresh process's peak resident set (`ru_maxrss` from `wait4`, or the worker's
VmHWM), so one run's caches never lower another's peak. RSS does not depend on how busy the
machine is, so this benchmark may run beside other work; its seconds may not.

  jsonl     `qa-explain --jsonl` over the first N questions of ../shared/data/squad2-dev-sample.json,
            each with its own paragraph (they fill their 384-token windows); N beyond the
            sample's 585 questions cycles through it. Flat in N is the target.
  passage   one question about a document of 1k ... 200k characters (SQuAD paragraphs end to
            end, up to ~150 windows). Flat in length is the target.
  worker    a `qa-worker` (QA_BATCH_SIZE 8) answering 8 questions at once, each about a 20,000-
            character document, with everything a reply carries (faithfulness, the picture).
  calibrate per-row bytes measured (peak RSS of r rows minus 1 row, over r - 1) against
            explain_core.engine.budget's estimate, for the fused answer+gradient pass and the
            forward pass: what CALIBRATION_FORWARD/BACKWARD are set from.

Models: ../shared/models/minilm-l6-squad2-tiny (6 layers, hidden 384), and random base-size ones
built by bench/models.py: DistilBERT-base (6 layers, hidden 768) and RoBERTa-base (12 layers,
hidden 768, the default QA_MODEL's size), kept in --models-dir. QA_MEMORY_BUDGET is left at its
default unless --budget is given (e.g. --budget 1GB,100GB to compare).

Usage: python -m bench.bench_memory [--lines 100,1000,585] [--lengths 1000,20000,200000]
       [--models minilm,distilbert,roberta] [--parts jsonl,passage,worker,calibrate] [--budget SIZE,...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import SHARED_MODEL
from bench.bench_queue import memory_kb, start_worker, through_redis
from bench.models import build_random_model
from tests.support import ROOT

SQUAD = ROOT.parent / "shared" / "data" / "squad2-dev-sample.json"
DOCUMENT_QUESTION = "Who ruled the duchy of Normandy?"
PASSAGE_CHILD = """
import sys
from explain_core import explain
model, length, text, question = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], encoding="utf-8").read(), sys.argv[4]
print(explain(question, text[:length], model=model).windows)
"""
CALIBRATE_CHILD = """
import resource, sys
import numpy as np
from explain_core import load_model
from explain_core.settings import DecodeSettings
qa = load_model(sys.argv[1]); rows, backward, length = int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
qa.trace()
def run(r):
    ids = np.full((r, length), 2000, np.int32); mask = np.ones_like(ids); types = np.zeros_like(ids)
    if backward:
        allowed = np.ones((r, length), np.float32)
        qa.answer_and_gradient(ids, mask, types, allowed, np.int32(15), np.bool_(True))[4].numpy()
    else:
        qa.logits(ids, mask, types)[0].numpy()
for _ in range(2): run(1)
one = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2): run(rows)
print(one, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, qa.footprint.row_bytes(length, backward))
"""
JSONL_CHILD = "from explain_core.cli import main; main()"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
       "PYTHONPATH": str(ROOT)}


def peak(argv: list[str], env: dict[str, str]) -> tuple[float, float, list[str]]:
    """Run a child; its peak RSS (MB), its wall time (s) and its stdout's lines."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv[:4]} failed: {err.read().decode(errors='replace')[-2000:]}")
        lines = out.read().decode().splitlines()
    return usage.ru_maxrss / 1024, time.perf_counter() - started, lines


def squad_items() -> list[tuple[str, str]]:
    """(question, its paragraph) for every question of the SQuAD 2.0 sample, in file order."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    return [(qa["question"], paragraph["context"]) for article in data for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]]


def squad_document() -> str:
    """The sample's paragraphs end to end: real prose of any length up to ~90,000 characters, repeated beyond."""
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    return "\n\n".join(paragraph["context"] for article in data for paragraph in article["paragraphs"])


def budgets(arg: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(label, environment) per --budget value; the default budget when none is given."""
    for value in arg.split(",") if arg else [""]:
        yield (value or "default"), ({**ENV, "QA_MEMORY_BUDGET": value} if value else ENV)


def jsonl(models: dict[str, str], counts: list[int], budget_arg: str, tmp: Path) -> None:
    print("\npeak RSS of `qa-explain --jsonl` over SQuAD 2.0 sample lines (each question with its paragraph)")
    print("| model | budget | lines | peak MB | s | lines/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    items = squad_items()
    for name, model in models.items():
        for label, env in budgets(budget_arg):
            for count in counts:
                path = tmp / f"{count}.jsonl"
                path.write_text("".join(json.dumps({"id": i, "question": items[i % len(items)][0],
                                                    "passage": items[i % len(items)][1]}) + "\n"
                                        for i in range(count)), encoding="utf-8")
                mb, seconds, lines = peak([sys.executable, "-c", JSONL_CHILD, "--jsonl", str(path), "--model", model],
                                          env)
                assert len(lines) == count and "answer" in json.loads(lines[-1])
                print(f"| {name} | {label} | {count:,} | {mb:.0f} | {seconds:.1f} | {count / seconds:.1f} |",
                      flush=True)


def passage(models: dict[str, str], lengths: list[int], budget_arg: str, tmp: Path) -> None:
    print("\npeak RSS of one question about a long document (SQuAD paragraphs end to end)")
    print("| model | budget | characters | windows | peak MB | s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    text = squad_document()
    document = tmp / "document.txt"
    document.write_text((text + "\n\n") * (max(lengths) // len(text) + 1), encoding="utf-8")
    for name, model in models.items():
        for label, env in budgets(budget_arg):
            for length in lengths:
                argv = [sys.executable, "-c", PASSAGE_CHILD, model, str(length), str(document), DOCUMENT_QUESTION]
                mb, seconds, lines = peak(argv, env)
                print(f"| {name} | {label} | {length:,} | {lines[-1]} | {mb:.0f} | {seconds:.1f} |", flush=True)


def worker(models: dict[str, str], budget_arg: str, tmp: Path, jobs: int = 8, length: int = 20_000) -> None:
    print(f"\npeak RSS of a qa-worker (QA_BATCH_SIZE 8) answering {jobs} questions at once about "
          f"{length:,}-character documents, with faithfulness and the picture")
    print("| model | budget | peak MB (VmHWM) | s |")
    print("| --- | --- | ---: | ---: |")
    text = squad_document() * 2
    questions = [question for question, _ in squad_items()]
    items = [(questions[i * 37], text[i * 7919:i * 7919 + length]) for i in range(jobs)]
    for name, model in models.items():
        for label, env in budgets(budget_arg):
            mb, seconds = worker_peak(model, env, items, tmp / f"worker-{name}-{label}.log")
            print(f"| {name} | {label} | {mb:.0f} | {seconds:.1f} |", flush=True)


def worker_peak(model: str, env: dict[str, str], items: list[tuple[str, str]], log: Path) -> tuple[float, float]:
    """A fresh worker's peak RSS (MB) after answering `items` enqueued at once, and the seconds they took."""
    from explain_core.queue import JobQueue
    from tests.support.redis_server import RedisServer

    server = RedisServer(appendonly=False).start()
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k == "QA_MEMORY_BUDGET"})  # start_worker passes os.environ
    try:
        proc = start_worker(server.url, Path(model), 8, log)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        seconds = through_redis(JobQueue.connect(server.url, "bench"), items, 0)
        return memory_kb(proc.pid)["VmHWM"] / 1024, seconds
    finally:
        proc.terminate()
        proc.wait(60)
        server.stop()


def calibrate(models: dict[str, str], length: int = 384) -> None:
    print(f"\nbytes per {length}-token row: measured (peak RSS with r rows minus with 1, over r - 1) against the "
          f"estimate; the process's peak with 1 row (the weights, TensorFlow, one window) beside it")
    print("| model | pass | rows | peak MB with 1 row | measured MB/row | estimated MB/row | estimate / measured |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, model in models.items():
        for backward, rows in ((True, 4), (False, 32)):
            _, _, lines = peak([sys.executable, "-c", CALIBRATE_CHILD, model, str(rows), str(int(backward)),
                                str(length)], ENV)
            one, many, estimate = (int(x) for x in lines[-1].split())
            measured = max(1.0, (many - one) * 1024 / (rows - 1))
            print(f"| {name} | {'answer+gradient' if backward else 'forward'} | {rows} | {one / 1024:.0f} "
                  f"| {measured / 1e6:.0f} | {estimate / 1e6:.0f} | {estimate / measured:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", default="100,585,1000")
    parser.add_argument("--lengths", default="1000,20000,200000")
    parser.add_argument("--models", default="minilm,distilbert,roberta")
    parser.add_argument("--parts", default="calibrate,jsonl,passage,worker")
    parser.add_argument("--budget", default="", help="QA_MEMORY_BUDGET values to compare (default: the default)")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "models")
    args = parser.parse_args()
    if not SQUAD.exists():
        raise SystemExit(f"needs the SQuAD 2.0 sample at {SQUAD}")
    names = args.models.split(",")
    models = {name: str(SHARED_MODEL) if name == "minilm" else
              str(build_random_model(name, args.models_dir / f"{name}-base-random")) for name in names}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "calibrate" in parts:
            calibrate(models)
        if "jsonl" in parts:
            jsonl(models, [int(n) for n in args.lines.split(",")], args.budget, Path(tmp))
        if "passage" in parts:
            passage(models, [int(n) for n in args.lengths.split(",")], args.budget, Path(tmp))
        if "worker" in parts:
            worker(models, args.budget, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
