"""One question about a long document (~50 pages, ~100 windows): time to the first progress and to the answer.

The seed applied BERT QA to long documents (legal ones). For each model, with the SQuAD 2.0
sample's paragraphs end to end cut to --windows 384-token windows:

- in this process: the document's tokenization (once per question: the pipeline's windows depend
  on the question's length), and the transformers pipeline answering the question (it reads every
  window); then the forward pass over one batch of windows eagerly, the trace of the forward graph,
  and the same batch through the graph: what tracing would save a one-question run (`qa-explain`
  runs its first calls eagerly; explain_core.engine.model.GraphFunction);
- through a real `qa-worker` and a private redis-server, as the bot asks: the time from enqueue to
  the worker's first progress events, "running" and the first "reading" with windows read (the bot
  edits its placeholder when it hears them, within its edit throttle), and to the result (answer,
  explanation, faithfulness, picture); then a
  follow-up question about the same document: its time, and the bytes the enqueue sent to Redis
  (the document is stored once; a follow-up refers to it). Answers are checked against the pipeline's.

Models: ../shared/models/minilm-l6-squad2-tiny and a random DistilBERT-base-size model (bench/models.py).
Run it alone on the machine.

Usage: python -m bench.bench_long_document [--models minilm,distilbert] [--windows 100] [--repeats 2]
"""
from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import SHARED_MODEL  # noqa: E402
from bench.bench_memory import squad_document, squad_items  # noqa: E402
from bench.bench_queue import start_worker  # noqa: E402
from bench.models import build_random_model  # noqa: E402
from explain_core.queue import JobOptions, JobQueue, ReplyTo  # noqa: E402
from explain_core.settings import DecodeSettings  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

T = TypeVar("T")
FOLLOW_UP = 1  # the follow-up is the sample's next question about the same paragraph


def document(tokenizer: Any, question: str, windows: int) -> str:
    """The sample's paragraphs end to end (repeated if need be), cut where they make `windows` windows."""
    from explain_core.engine.windows import make_windows

    text = squad_document()
    while len(make_windows(tokenizer, question, text, DecodeSettings())) < windows:
        text += "\n\n" + text
    low, high = 0, len(text)
    while low < high:  # the shortest prefix with `windows` windows
        middle = (low + high) // 2
        if len(make_windows(tokenizer, question, text[:middle], DecodeSettings())) >= windows:
            high = middle
        else:
            low = middle + 1
    return text[:low]


def best(repeats: int, work: Callable[[], T]) -> tuple[float, T]:
    """Best seconds of `repeats` calls of `work`, and its last result."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - started)
    return min(times), out


def in_process(name: str, model: str, questions: list[str], text: str, repeats: int) -> list[str]:
    """Tokenization, the pipeline, and eager against traced forward passes; the pipeline's answers."""
    from transformers import pipeline

    from explain_core import load_model
    from explain_core.engine.budget import default_budget
    from explain_core.engine.windows import make_windows

    qa = load_model(model)
    pipe = pipeline("question-answering", model=qa.model, tokenizer=qa.tokenizer, framework="tf", dtype=None)
    tokenize_s, windows = best(repeats, lambda: make_windows(qa.tokenizer, questions[0], text, DecodeSettings()))
    pipe(question=questions[0], context=text[:2000])  # its first call, off the clock
    print(f"\n{name}: {len(text):,} characters, {len(windows)} windows; tokenizing them: {tokenize_s * 1000:.0f} ms")
    answers = []
    for question in questions:
        pipeline_s, answer = best(repeats, functools.partial(pipe, question=question, context=text))
        print(f"the pipeline answers {question!r} in {pipeline_s:.2f} s: {answer['answer']!r} ({answer['score']:.3f})")
        answers.append(str(answer["answer"]))
    rows = qa.footprint.rows(default_budget(), windows.input_ids.shape[1], backward=False)
    batch = (windows.input_ids[:rows], windows.attention_mask[:rows], windows.token_type_ids[:rows])
    eager_s, _ = best(repeats, lambda: qa.logits(*batch))
    started = time.perf_counter()
    qa.logits.trace()
    trace_s = time.perf_counter() - started
    graph_s, _ = best(repeats, lambda: qa.logits(*batch))
    passes = -(-len(windows) // rows)
    payback = f"after {trace_s / (eager_s - graph_s):.1f} passes" if eager_s > graph_s else "never"
    print(f"a forward pass of {len(batch[0])} windows (the memory budget's batch; {passes} such passes read the "
          f"document): eager {eager_s:.2f} s, traced {graph_s:.2f} s, the trace itself {trace_s:.2f} s: tracing "
          f"pays back {payback}")
    return answers


def through_worker(name: str, model: str, items: list[tuple[str, str]], expected: list[str], tmp: Path) -> None:
    """The questions one after another about the same document through a real worker."""
    server = RedisServer(appendonly=False).start()
    worker = start_worker(server.url, Path(model), 8, tmp / f"worker-{name}.log")
    try:
        queue = JobQueue.connect(server.url, "bench")
        queue.enqueue("warm", "Who?", "It was built by Robert Stevenson.", JobOptions(), ReplyTo())
        while not queue.read_results("bench", "reader", count=1, block_ms=1000):
            pass
        print("| question | bytes sent to Redis | 'running' s | first 'reading' s | answer s | answer "
              "| the pipeline's |")
        print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
        for i, ((question, text), theirs) in enumerate(zip(items, expected)):
            position = queue.progress_position()
            sent_before = queue.redis.info("stats")["total_net_input_bytes"]
            started = time.perf_counter()
            queue.enqueue(f"q{i}", question, text, JobOptions(), ReplyTo())
            sent = queue.redis.info("stats")["total_net_input_bytes"] - sent_before
            first: dict[str, float] = {}
            while True:
                position, events = queue.read_progress(position, block_ms=50)
                for event in events:
                    first.setdefault(event.stage, time.perf_counter() - started)
                if results := queue.read_results("bench", "reader", count=1, block_ms=1):
                    answered = time.perf_counter() - started
                    break
            result = results[0].result
            assert result.ok, result.error
            ours = result.answers[0].answer
            shown = [f"{first[stage]:.2f}" if stage in first else "-" for stage in ("running", "reading")]
            print(f"| {'first' if i == 0 else 'follow-up'} | {sent:,} | {' | '.join(shown)} | {answered:.2f} "
                  f"| {ours!r} | {theirs!r}{'' if ours == theirs else ' (differs!)'} |", flush=True)
    finally:
        worker.terminate()
        worker.wait(60)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,distilbert")
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "models")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    (first, _), (second, _) = squad_items()[0], squad_items()[FOLLOW_UP]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = str(SHARED_MODEL) if name == "minilm" else str(
                build_random_model(name, args.models_dir / f"{name}-base-random"))
            from explain_core import load_model

            text = document(load_model(model).tokenizer, first, args.windows)
            expected = in_process(name, model, [first, second], text, args.repeats)
            through_worker(name, model, [(first, text), (second, text)], expected, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
