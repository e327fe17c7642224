"""The worker at saturation against the transformers pipeline answering the same questions.

For each batch size n (1, 2, 4, 8, 16 jobs answered together): a `qa-worker` with QA_BATCH_SIZE=n
and a private redis-server gets --jobs questions enqueued at once (each with its SQuAD paragraph),
and answers them with everything a reply carries (answer, explanation, faithfulness, picture); then,
in this process, the transformers question-answering pipeline answers the same questions, answers
only, batched as the pipeline batches (`batch_size=n`). Side by side, alternated --repeats times
(best of each): questions per second and p50/p99 latency from the moment all were asked, their
ratios, and for the worker how long a question waited in the queue against how long it was computed
(the result's `wait_ms` - `compute_ms`, and `compute_ms`: the batch's compute, which every job of it waits).
First, in this process, where a question's time goes: each stage of the worker's computation at the
worker's default batch, beside the pipeline's answers alone.

Models: ../shared/models/minilm-l6-squad2-tiny and a random DistilBERT-base-size model (bench/models.py).
Timing figures: run it alone on the machine.

Usage: python -m bench.bench_saturation [--batches 1,2,4,8,16] [--jobs 32] [--repeats 2] [--models minilm,distilbert]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import SHARED_MODEL  # noqa: E402
from bench.bench_memory import SQUAD, squad_items  # noqa: E402
from bench.bench_queue import start_worker, workload  # noqa: E402
from bench.models import build_random_model  # noqa: E402
from explain_core import defaults, explain_batch  # noqa: E402
from explain_core.engine.faithfulness import measure as measure_faithfulness  # noqa: E402
from explain_core.engine.locate import locate_all  # noqa: E402
from explain_core.engine.saliency import resolve_method  # noqa: E402
from explain_core.engine.windows import make_windows  # noqa: E402
from explain_core.explanation import Explanation  # noqa: E402
from explain_core.present.summary import summarize  # noqa: E402
from explain_core.queue import JobOptions, JobQueue, ReplyTo  # noqa: E402
from explain_core.render import render_png  # noqa: E402
from explain_core.settings import DecodeSettings  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

if TYPE_CHECKING:
    from explain_core.engine import QAModel


def questions(count: int) -> list[tuple[str, str]]:
    """Real SQuAD questions with their paragraphs when the sample is there, else the corpus workload."""
    return squad_items()[:count] if SQUAD.exists() else workload(count)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def through_worker(queue: JobQueue, items: list[tuple[str, str]], run: str) -> dict[str, float]:
    """All `items` enqueued at once; questions/s, latency quantiles (ms) and queue wait vs compute."""
    started = time.time()
    for i, (question, passage) in enumerate(items):
        queue.enqueue(f"{run}-{i}", question, passage, JobOptions(), ReplyTo())
    latencies, waits, computes = [], [], []
    while len(latencies) < len(items):
        for entry in queue.read_results("bench", "reader", count=100, block_ms=1000):
            assert entry.result.ok, entry.result.error
            queue.ack_result("bench", entry.entry_id)
            latencies.append((time.time() - started) * 1000)
            timings = entry.result.timings_ms
            computes.append(timings["compute_ms"])
            waits.append(timings["wait_ms"] - timings["compute_ms"])
    return {"qps": len(items) / (time.time() - started), "p50": quantile(latencies, 0.5),
            "p99": quantile(latencies, 0.99), "wait": statistics.median(waits), "compute": statistics.median(computes)}


def through_pipeline(pipe: object, items: list[tuple[str, str]], batch: int) -> dict[str, float]:
    """The pipeline over the same questions, `batch` at a time; a question's latency is when its batch ended."""
    started = time.perf_counter()
    latencies = []
    for first in range(0, len(items), batch):
        part = items[first:first + batch]
        pipe(question=[q for q, _ in part], context=[p for _, p in part], batch_size=batch)  # type: ignore[operator]
        latencies += [(time.perf_counter() - started) * 1000] * len(part)
    return {"qps": len(items) / (time.perf_counter() - started), "p50": quantile(latencies, 0.5),
            "p99": quantile(latencies, 0.99)}


def stages(qa: QAModel, pipe: object, items: list[tuple[str, str]], batch: int, repeats: int) -> None:
    """Where a reply's time goes, in this process, per question (best of `repeats`): each stage of
    the worker's computation, in `batch`-question groups as the worker runs them, beside the
    pipeline's answers alone; the queue's share is the worker's 1/(q/s) less their sum."""
    settings, vanilla = DecodeSettings(), resolve_method(defaults.METHOD)
    qa.trace()  # as the worker does before it takes jobs; then one group of each, off the clock
    explain_batch(items[:batch], model=qa, faithfulness=True)
    through_pipeline(pipe, items[:batch], batch)
    best: dict[str, float] = {}
    for _ in range(repeats):
        spent: dict[str, float] = defaultdict(float)

        @contextlib.contextmanager
        def timed(stage: str, spent: dict[str, float] = spent) -> Iterator[None]:
            started = time.perf_counter()
            yield
            spent[stage] += (time.perf_counter() - started) * 1000 / len(items)

        for first in range(0, len(items), batch):
            part = items[first:first + batch]
            with timed("tokenize"):
                windows = [make_windows(qa.tokenizer, q, p, settings) for q, p in part]
            with timed("answer pass (forward + gradient)"):
                located = locate_all(qa, windows, [p for _, p in part], settings)
            for found in located:
                ctx = found.context(qa)
                with timed("explanation (words)"):
                    raw = vanilla.attribute(ctx)
                with timed("faithfulness (6 masked rows)"):
                    measure_faithfulness(ctx, raw)
            for exp in explain_batch(part, model=qa, faithfulness=True):
                assert isinstance(exp, Explanation)
                with timed("picture (PNG)"):
                    render_png(exp)
                with timed("summary"):
                    summarize(exp)
            with timed("pipeline: answers only"):
                through_pipeline(pipe, part, batch)
        best = {k: min(v, best.get(k, v)) for k, v in spent.items()}
    ours = sum(v for k, v in best.items() if not k.startswith("pipeline"))
    print(f"\nwhere a question's time goes, in one process, {batch} questions at a time (ms per question, "
          f"best of {repeats}):")
    print("| stage | ms | share |")
    print("| --- | ---: | ---: |")
    for stage, ms in best.items():
        share = f"{ms / ours:.0%}" if not stage.startswith("pipeline") else f"{ours / ms:.2f}x: ours / pipeline"
        print(f"| {stage} | {ms:.1f} | {share} |")
    print(f"| all of ours | {ours:.1f} | |")


def bench_model(name: str, model: str, batches: list[int], jobs: int, repeats: int, tmp: Path) -> None:
    from transformers import pipeline

    from explain_core import load_model

    qa = load_model(model)
    pipe = pipeline("question-answering", model=qa.model, tokenizer=qa.tokenizer, framework="tf", dtype=None)
    items = questions(jobs)
    stages(qa, pipe, items, defaults.BATCH_SIZE, repeats)
    print(f"\n{name}: {jobs} questions asked at once (worker: answer + explanation + faithfulness + picture; "
          f"pipeline: answers only), best of {repeats}")
    print("| batch | worker q/s | p50 ms | p99 ms | pipeline q/s | p50 ms | p99 ms | q/s worker / pipeline "
          "| p50 worker / pipeline | queue wait ms (median) | compute ms (median) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for batch in batches:
        server = RedisServer(appendonly=False).start()
        worker = start_worker(server.url, Path(model), batch, tmp / f"worker-{name}-{batch}.log")
        try:
            queue = JobQueue.connect(server.url, "bench")
            through_worker(queue, items[:batch], f"warm-{batch}")  # the worker's first batch, off the clock
            pipe(question=[q for q, _ in items[:batch]], context=[p for _, p in items[:batch]], batch_size=batch)
            runs = [(through_worker(queue, items, f"run{r}-{batch}"), through_pipeline(pipe, items, batch))
                    for r in range(repeats)]
        finally:
            worker.terminate()
            worker.wait(60)
            server.stop()
        ours = max((w for w, _ in runs), key=lambda m: m["qps"])
        theirs = max((p for _, p in runs), key=lambda m: m["qps"])
        print(f"| {batch} | {ours['qps']:.2f} | {ours['p50']:.0f} | {ours['p99']:.0f} | {theirs['qps']:.2f} "
              f"| {theirs['p50']:.0f} | {theirs['p99']:.0f} | {ours['qps'] / theirs['qps']:.2f} "
              f"| {ours['p50'] / theirs['p50']:.2f} | {ours['wait']:.0f} | {ours['compute']:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default="minilm,distilbert")
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "models")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "minilm" and not SHARED_MODEL.exists():
                print("minilm: ../shared/models/minilm-l6-squad2-tiny is not here; skipped")
                continue
            model = str(SHARED_MODEL) if name == "minilm" else str(
                build_random_model(name, args.models_dir / f"{name}-base-random"))
            bench_model(name, model, [int(n) for n in args.batches.split(",")], args.jobs, args.repeats, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
