"""One question in a fresh process: ours against the transformers pipeline, whole process.

Side by side, interleaved (ours, ours --png, pipeline, ours, ...), each a new Python process
timed from start to exit, so imports, model loading, the first call and the interpreter's exit
are all counted; the time until each prints its answer is shown beside it:

  ours          `qa-explain --question Q --passage-file P --model M`
  ours --png    the same, writing the picture
  pipeline      a script that loads the same model into the transformers question-answering
                pipeline (framework "tf") and answers the same question, nothing else, with
                TensorFlow's own choice of kernels, as a user's script would run
  pipeline, oneDNN on
                the same script with TF_ENABLE_ONEDNN_OPTS=1, the engine's default (TensorFlow
                turns oneDNN on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX); shown
                when TF_ENABLE_ONEDNN_OPTS is not set for the whole run

Then many questions in one process (`--lines 1,30,100,1000`): `qa-explain --jsonl FILE` over the
first N SQuAD 2.0 sample questions with their paragraphs (the 585-line sample cycled beyond it)
against a script that runs the pipeline over the same lines in chunks of `defaults.JSONL_CHUNK`
(`batch_size` the same; `handle_impossible_answer=True`, as the engine's default for SQuAD 2.0
models) and prints each answer as a JSON line; whole processes, alternated.

Then the worker: `qa-worker` against a private redis-server, from start to "ready" (it traces
its graphs and answers a warm-up question before taking jobs), and the latency of its first
job and of a later one, enqueued through the real queue.

Model: ../shared/models/minilm-l6-squad2-tiny (or `--model PATH`). Run it alone on the machine.

Usage: python -m bench.bench_cold_start [--repeats 5] [--model PATH] [--lines 1,30,100,1000] [--parts one,lines,worker]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import SHARED_MODEL
from tests.support import ROOT

QUESTION = "Who built the Bell Rock Lighthouse?"
PASSAGE = ROOT / "samples" / "lighthouse.txt"
PIPELINE = """
import os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from transformers import pipeline
qa = pipeline("question-answering", model=sys.argv[1], framework="tf", dtype=None)
print(qa(question=sys.argv[2], context=open(sys.argv[3], encoding="utf-8").read())["answer"])
"""
PIPELINE_JSONL = """
import itertools, json, os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from transformers import pipeline
qa = pipeline("question-answering", model=sys.argv[1], framework="tf", dtype=None)
chunk = int(sys.argv[3])
with open(sys.argv[2], encoding="utf-8") as lines:
    while part := [json.loads(line) for line in itertools.islice(lines, chunk)]:
        found = qa(question=[r["question"] for r in part], context=[r["passage"] for r in part], batch_size=chunk,
                   handle_impossible_answer=True)
        for answer in found if isinstance(found, list) else [found]:
            print(json.dumps(answer))
"""
# Unbuffered, so that a process's answer reaches the pipe when it is printed, not at exit.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
       "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def whole_process(argv: list[str]) -> tuple[float, float, list[str]]:
    """Seconds until the process exits, seconds until its first line of output (the answer), its lines."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: it never fills up and blocks the process
        started = time.perf_counter()
        with subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT) as process:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            answered = time.perf_counter() - started
            rest = process.stdout.read()
            code = process.wait(timeout=600)
        seconds = time.perf_counter() - started
        if code != 0:
            stderr.seek(0)
            raise RuntimeError(f"{argv[:4]} failed: {stderr.read().decode(errors='replace')[-2000:]}")
    return seconds, answered, (first_line + rest).splitlines()


def one_question(model: str, repeats: int) -> None:
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "ours": [str(bin_dir / "qa-explain"), "--question", QUESTION, "--passage-file", str(PASSAGE),
                     "--model", model],
            "ours --png": [str(bin_dir / "qa-explain"), "--question", QUESTION, "--passage-file", str(PASSAGE),
                           "--model", model, "--png", str(Path(tmp) / "x.png")],
            "pipeline": [sys.executable, "-c", PIPELINE, model, QUESTION, str(PASSAGE)],
        }
        if "TF_ENABLE_ONEDNN_OPTS" not in ENV:
            commands["pipeline, oneDNN on"] = ["env", "TF_ENABLE_ONEDNN_OPTS=1", *commands["pipeline"]]
        times: dict[str, list[float]] = {name: [] for name in commands}
        until_answer: dict[str, list[float]] = {name: [] for name in commands}
        answers: dict[str, str] = {}
        whole_process(commands["pipeline"])  # the page cache holds the libraries for everyone alike
        for _ in range(repeats):
            for name, argv in commands.items():
                seconds, answered, lines = whole_process(argv)
                times[name].append(seconds)
                until_answer[name].append(answered)
                answers[name] = lines[0]
    pipe = statistics.median(times["pipeline"])
    pipe_answered = statistics.median(until_answer["pipeline"])
    print(f"\none question, whole process ({Path(model).name}; medians of {repeats}, interleaved)")
    print("| process | median s | min s | / pipeline | answer printed at, median s | / pipeline |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, values in times.items():
        answered = statistics.median(until_answer[name])
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | "
              f"{statistics.median(values) / pipe:.2f} | {answered:.2f} | {answered / pipe_answered:.2f} |")
    print(f"answers: ours {answers['ours']!r}, pipeline {answers['pipeline']!r}")


def many_lines(model: str, counts: list[int], repeats: int) -> None:
    """`qa-explain --jsonl` against the pipeline's script over the same SQuAD lines, whole processes."""
    from bench.bench_memory import squad_items
    from explain_core import defaults

    items = squad_items()
    bin_dir = Path(sys.executable).parent
    print(f"\n`qa-explain --jsonl` against the pipeline over the same SQuAD lines, whole processes "
          f"({Path(model).name}; medians of {repeats}, alternated)")
    print("| lines | ours s | pipeline s | ours / pipeline | ours lines/s | pipeline lines/s | answers equal |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            path = Path(tmp) / f"{count}.jsonl"
            path.write_text("".join(json.dumps({"question": q, "passage": p}) + "\n"
                                    for q, p in itertools.islice(itertools.cycle(items), count)), encoding="utf-8")
            commands = {"ours": [str(bin_dir / "qa-explain"), "--jsonl", str(path), "--model", model],
                        "pipeline": [sys.executable, "-c", PIPELINE_JSONL, model, str(path),
                                     str(defaults.JSONL_CHUNK)]}
            times: dict[str, list[float]] = {name: [] for name in commands}
            output: dict[str, list[str]] = {}
            for _ in range(repeats):
                for name, argv in commands.items():
                    seconds, _, lines = whole_process(argv)
                    times[name].append(seconds)
                    output[name] = lines
            ours, theirs = (statistics.median(times[name]) for name in commands)
            equal = sum(json.loads(a)["answer"] == json.loads(b)["answer"]
                        for a, b in zip(output["ours"], output["pipeline"]))
            print(f"| {count:,} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} | {count / ours:.1f} | "
                  f"{count / theirs:.1f} | {equal}/{count} |", flush=True)


def worker_start(model: str) -> None:
    from explain_core.queue import JobOptions, JobQueue, ReplyTo
    from tests.support.redis_server import RedisServer

    server = RedisServer(appendonly=False).start()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    started = time.perf_counter()
    with log.open("w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "explain_core.worker"], stdout=out, stderr=subprocess.STDOUT,
                                  env={**ENV, "REDIS_URL": server.url, "QA_MODEL": model, "QA_BLOCK_MS": "50"})
    try:
        while " ready: " not in log.read_text():
            if worker.poll() is not None or time.perf_counter() - started > 300:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.05)
        ready = time.perf_counter() - started
        queue = JobQueue.connect(server.url)
        latencies = []
        for i in range(3):
            sent = time.perf_counter()
            queue.enqueue(f"k{i}", QUESTION, PASSAGE.read_text(encoding="utf-8"), JobOptions(), ReplyTo())
            while not (entries := queue.read_results("bench", "b", count=1, block_ms=50)):
                pass
            latencies.append(time.perf_counter() - sent)
            queue.ack_result("bench", entries[0].entry_id)
        print(f"\nworker: ready {ready:.2f} s after start; job latency (enqueue to result, with picture and "
              f"faithfulness): first {latencies[0] * 1000:.0f} ms, second {latencies[1] * 1000:.0f} ms, "
              f"third {latencies[2] * 1000:.0f} ms")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        server.close()
        log.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=str(SHARED_MODEL))
    parser.add_argument("--lines", default="1,30,100,1000")
    parser.add_argument("--parts", default="one,lines,worker")
    args = parser.parse_args()
    parts = args.parts.split(",")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"TF_ENABLE_ONEDNN_OPTS {ENV.get('TF_ENABLE_ONEDNN_OPTS', 'not set')}")
    if "one" in parts:
        one_question(args.model, args.repeats)
    if "lines" in parts:
        many_lines(args.model, [int(n) for n in args.lines.split(",")], args.repeats)
    if "worker" in parts:
        worker_start(args.model)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
