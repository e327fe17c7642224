"""What does the queue cost? The worker's computation alone versus the same jobs through Redis.

With a DistilBERT-base-size model (random weights: 6 layers, dim 768, vocabulary 30,522;
bench/models.py) it measures:

- batching: jobs answered in one `explain_batch` pass per batch versus one by one, in
  process (`Answerer(batch=...)`), for the vanilla gradient and integrated gradients;
- queue overhead: throughput of `Answerer.answer` in process (explain + summary + PNG, in
  batches of QA_BATCH_SIZE) versus the same jobs enqueued in a private redis-server and
  answered by a `python -m explain_core.worker` subprocess, read back as the bot does
  (target ratio >= 0.9); best of --repeats runs each, alternated, since the machine is shared;
- enqueue latency p50/p99 (a 0.5 KB passage inline, a 20 KB passage stored by reference);
- the worker process's memory: RSS after the runs and its peak (VmHWM).

Usage: python -m bench.bench_queue [--jobs 48] [--batch 8] [--repeats 3] [--model DIR]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain_core.queue import Finished, Job, JobOptions, JobQueue, JobResult, ReplyTo  # noqa: E402
from explain_core.worker import Answerer, Ready  # noqa: E402
from tests.support import ROOT  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus.txt"
QUESTIONS = ("Who founded it?", "When did it happen?", "Where did she move?", "How much did it cost?",
             "What was built?", "Why did they leave?")


def workload(count: int) -> list[tuple[str, str]]:
    """`count` (question, paragraph) pairs: real prose of SQuAD-paragraph length (one window)."""
    paragraphs = [p.strip() for p in CORPUS.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 200]
    return [(QUESTIONS[i % len(QUESTIONS)], paragraphs[i % len(paragraphs)]) for i in range(count)]


def ready_jobs(items: list[tuple[str, str]], method: str) -> list[Ready]:
    return [Ready(f"{i}-0", Job(key=f"k{i}", question=q, options=JobOptions(method=method), reply_to=ReplyTo(),
                                enqueued_at=time.time(), passage=p), p) for i, (q, p) in enumerate(items)]


def in_process(answerer: Answerer, ready: list[Ready], batch: int) -> float:
    """Seconds to answer all jobs in batches of `batch`, as the worker loop would."""
    started = time.perf_counter()
    for i in range(0, len(ready), batch):
        for outcome in answerer.answer(ready[i:i + batch]):
            assert not isinstance(outcome, Exception), outcome
    return time.perf_counter() - started


def through_redis(queue: JobQueue, items: list[tuple[str, str]], run: int) -> float:
    """Seconds from the first enqueue to the last result read (as the bot reads them)."""
    started = time.perf_counter()
    for i, (question, passage) in enumerate(items):
        queue.enqueue(f"run{run}-{i}", question, passage, JobOptions(), ReplyTo())
    seen = 0
    while seen < len(items):
        for entry in queue.read_results("bench", "reader", count=100, block_ms=1000):
            assert entry.result.ok, entry.result.error
            queue.ack_result("bench", entry.entry_id)
            seen += 1
    return time.perf_counter() - started


def protocol_cost(queue: JobQueue, items: list[tuple[str, str]], template: JobResult, batch: int) -> float:
    """Milliseconds per job of the protocol alone, both ends in this process: enqueue, read by
    a worker in batches, result (a real one: summary + PNG) written and job acked, result read
    and acked by the bot. What the queue adds to a job, free of the model's timing noise."""
    started = time.perf_counter()
    for i, (question, passage) in enumerate(items):
        queue.enqueue(f"proto-{i}", question, passage, JobOptions(), {"channel": "C1"})
    answered = 0
    while answered < len(items):
        entries = queue.read_jobs("protocol", batch, 100)
        queue.finish([Finished(e.entry_id, replace(template, job_id=e.entry_id)) for e in entries])
        answered += len(entries)
    while answered:
        for entry in queue.read_results("bot", "protocol", count=100, block_ms=100):
            queue.ack_result("bot", entry.entry_id)
            answered -= 1
    return (time.perf_counter() - started) * 1000 / len(items)


def best_of(repeats: int, *measures: Callable[[], float]) -> list[float]:
    """The best time of each measure, run alternately, so that a burst of load from another
    process on the machine hits them alike rather than one of them."""
    times = [[measure() for measure in measures] for _ in range(repeats)]
    return [min(column) for column in zip(*times)]


def enqueue_latency(queue: JobQueue, passage: str, count: int) -> tuple[float, float]:
    """p50 and p99 of one `enqueue` call, in milliseconds."""
    times = []
    for i in range(count):
        started = time.perf_counter()
        queue.enqueue(f"lat-{len(passage)}-{i}", "Who founded it?", passage, JobOptions(), {"channel": "C1"})
        times.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(times, n=100)
    return quantiles[49], quantiles[98]


def memory_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}


def start_worker(redis_url: str, model: Path, batch: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "QA_NAMESPACE": "bench", "QA_MODEL": str(model),
           "QA_BATCH_SIZE": str(batch), "QA_BLOCK_MS": "100"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "explain_core.worker"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while " ready: " not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"qa-worker did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--enqueues", type=int, default=2000)
    parser.add_argument("--model", type=Path, help="a QA checkpoint folder (default: a random DistilBERT-size one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        model = args.model or Path(tmp) / "model"
        if not args.model:  # built by a child, so that this process, like the worker, only loads it from disk:
            # building it here made the in-process side ~35% slower (measured)
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from bench.models import "
                            "build_random_model; build_random_model('distilbert', Path(sys.argv[1]))", str(model)],
                           cwd=ROOT, check=True)
        items = workload(args.jobs)
        rows: list[tuple[str, str]] = [("jobs per run", f"{args.jobs} (batch {args.batch}, "
                                                        f"best of {args.repeats})")]

        batched, single = Answerer(str(model)), Answerer(str(model), batch=False)
        batched.warm_up()
        # Integrated gradients costs tens of forward+backward passes per job: a few jobs suffice.
        for method, count in (("vanilla", args.jobs), ("integrated_gradients", max(2, args.batch // 2))):
            ready = ready_jobs(items[:count], method)
            in_process(batched, ready[:args.batch], args.batch)  # trace this method's graphs
            one_pass, one_by_one = best_of(args.repeats, lambda jobs=ready: in_process(batched, jobs, args.batch),
                                           lambda jobs=ready: in_process(single, jobs, args.batch))
            rows.append((f"batching gain, {method} ({count} jobs)",
                         f"{one_by_one / one_pass:.2f}x ({count / one_by_one:.2f} -> {count / one_pass:.2f} jobs/s)"))

        server = RedisServer(appendonly=False).start()
        worker = start_worker(server.url, model, args.batch, Path(tmp) / "worker.log")
        try:
            queue = JobQueue.connect(server.url, "bench")
            through_redis(queue, items[:args.batch], run=-1)  # the worker's first batch, off the clock
            ready = ready_jobs(items, "vanilla")
            runs = iter(range(args.repeats))
            local, remote = best_of(args.repeats, lambda: in_process(batched, ready, args.batch),
                                    lambda: through_redis(queue, items, next(runs)))
            rows += [("in process (Answerer.answer)", f"{args.jobs / local:.2f} jobs/s"),
                     ("through Redis + worker process", f"{args.jobs / remote:.2f} jobs/s"),
                     ("ratio Redis / in process (target >= 0.9)", f"{local / remote:.3f}")]
            template = batched.answer(ready[:1])[0]
            assert isinstance(template, JobResult)
            cost = protocol_cost(JobQueue.connect(server.url, "bench-protocol"), workload(500), template, args.batch)
            rows.append(("protocol alone per job, no model (500 jobs, result "
                         f"{len(template.to_json()) / 1024:.0f} KB)", f"{cost:.2f} ms"))
            rows.append(("ratio bound from it: model time / (model time + protocol)",
                         f"{(local / args.jobs) / (local / args.jobs + cost / 1000):.4f}"))
            for label, passage in (("0.5 KB inline", items[0][1][:500]), ("20 KB by reference", "word " * 4000)):
                p50, p99 = enqueue_latency(queue, passage, args.enqueues)
                rows.append((f"enqueue latency, {label} (n={args.enqueues})", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms"))
            mem = memory_kb(worker.pid)
            rows.append(("worker RSS after the runs / peak (VmHWM)",
                         f"{mem['VmRSS'] / 1024:.0f} MB / {mem['VmHWM'] / 1024:.0f} MB"))
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            server.close()

    width = max(len(name) for name, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
