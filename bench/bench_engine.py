"""What does the explanation cost on top of the answer, and what did the E^T E trick buy?

For one passage filling a single 384-token window, times side by side in one run:

  ours      `explain(..., method="vanilla")`: tokenize, answer (pipeline decoding), gradient,
            word aggregation - everything the worker does for one question;
  pipeline  the transformers question-answering pipeline, answer only (what users compare with);
  forward   the engine's forward-only graph (`QAModel.logits`) on the already tokenized window:
            the floor for any answer;
  seed      the seed's literal one-hot saliency, eager as it was written: a [seq, vocab] one-hot
            tensor, matmul with the word embeddings, `inputs_embeds`, gradient w.r.t. the
            one-hot, L2 norm per token;
  seed/tf   the same one-hot computation compiled with tf.function, to separate what graph
            compilation buys from what avoiding the [seq, vocab] tensor buys.

Functions are warmed up, then run interleaved (A, B, C, ... A, B, C ...) so that load from
other processes on a shared machine hits all of them alike; medians are reported.

Models: by default (1) a randomly initialised DistilBERT-base-size model (6 layers, hidden 768,
12 heads, vocabulary 30,522; bench/models.py), saved with `save_pretrained` into a temporary
folder, and (2) ../shared/models/minilm-l6-squad2-tiny when present. `--model PATH` (repeatable) replaces that list.

Usage: python -m bench.bench_engine [--repeats 10] [--model PATH ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# The engine first: it imports TensorFlow with its settings (TF_ENABLE_ONEDNN_OPTS), which the pipeline shares.
from explain_core import explain, load_model  # noqa: E402, I001
import tensorflow as tf  # noqa: E402
from transformers import logging as hf_logging  # noqa: E402
from transformers import pipeline  # noqa: E402

from explain_core.engine.model import QAModel  # noqa: E402
from explain_core.engine.windows import make_windows  # noqa: E402
from explain_core.settings import DecodeSettings  # noqa: E402
from bench import SHARED_MODEL  # noqa: E402
from bench.models import build_random_model  # noqa: E402
from tests.support import ROOT  # noqa: E402
QUESTION = "Who built the Bell Rock Lighthouse, and when was its light first lit?"
WINDOW_TOKENS = 384


def passage_filling_one_window(qa: QAModel) -> str:
    """The sample passage (repeated) cut at the token where question + passage reach 384 tokens."""
    sample = " ".join((ROOT / "samples" / "lighthouse.txt").read_text(encoding="utf-8").split())
    text = " ".join([sample] * 4)
    enc = qa.tokenizer(QUESTION, text, truncation="only_second", max_length=WINDOW_TOKENS,
                       return_offsets_mapping=True)
    passage_offsets = [o for o, s in zip(enc["offset_mapping"], enc.sequence_ids()) if s == 1]
    return text[:passage_offsets[-1][1]]


def seed_one_hot(qa: QAModel, input_ids: tf.Tensor, attention_mask: tf.Tensor,
                 token_type_ids: tf.Tensor) -> tf.Tensor:
    """The seed's saliency, literally: d(start[s] + end[e]) / d one-hot, L2 norm over the vocabulary."""
    matrix = qa.embedding_matrix
    with tf.GradientTape() as tape:
        one_hot = tf.one_hot(input_ids, depth=tf.shape(matrix)[0], dtype=tf.float32)  # [1, seq, vocab]
        tape.watch(one_hot)
        embeds = tf.matmul(one_hot, matrix)
        # Keras wants the first argument (input_ids) passed, even as None.
        inputs = {"input_ids": None, "inputs_embeds": embeds, "attention_mask": attention_mask, "training": False}
        if qa.uses_token_types:
            inputs["token_type_ids"] = token_type_ids
        out = qa.model(**inputs)
        start = tf.argmax(out.start_logits, axis=-1)
        end = tf.argmax(out.end_logits, axis=-1)
        target = tf.gather(out.start_logits, start, batch_dims=1) + tf.gather(out.end_logits, end, batch_dims=1)
    return tf.norm(tape.gradient(target, one_hot), axis=-1)


def same_quantity(qa: QAModel, ids: tf.Tensor, mask: tf.Tensor, types: tf.Tensor) -> float:
    """Largest difference between the seed's norms and ours for the seed's target, relative to
    the largest norm: shows that the timings compare two ways of computing one quantity."""
    seed = seed_one_hot(qa, ids, mask, types).numpy()[0]
    start, end = qa.logits(ids, mask, types)
    starts = tf.argmax(start, axis=-1, output_type=tf.int32)
    ends = tf.argmax(end, axis=-1, output_type=tf.int32)
    _, grad = qa.gradient_at(qa.word_embeddings(ids), ids, mask, types, starts, ends)
    ours = qa.one_hot_gradient_norm(grad.numpy()[0])
    return float(abs(seed - ours).max() / seed.max())


def measure(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (ms) of each function, warmed up twice, then run interleaved."""
    for function in functions.values():
        function()
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_model(path: str, repeats: int) -> tuple[dict[str, float], str, float]:
    qa = load_model(path)
    qa.trace()  # the steady state: graphs built, as the worker has them before its first job
    passage = passage_filling_one_window(qa)
    windows = make_windows(qa.tokenizer, QUESTION, passage, DecodeSettings())
    assert len(windows) == 1, "the benchmark passage must fit one window"
    ids, mask, types = (tf.constant(a) for a in (windows.input_ids, windows.attention_mask, windows.token_type_ids))
    pipe = pipeline("question-answering", model=qa.model, tokenizer=qa.tokenizer, framework="tf", dtype=None)
    seed_compiled = tf.function(lambda i, m, t: seed_one_hot(qa, i, m, t))
    medians = measure({
        "ours": lambda: explain(QUESTION, passage, model=qa, method="vanilla"),
        "pipeline": lambda: pipe(question=QUESTION, context=passage),
        "forward": lambda: [t.numpy() for t in qa.logits(ids, mask, types)],
        "seed": lambda: seed_one_hot(qa, ids, mask, types).numpy(),
        "seed/tf": lambda: seed_compiled(ids, mask, types).numpy(),
    }, repeats)
    config = qa.model.config
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    hidden = getattr(config, "hidden_size", None) or config.dim
    shape = (f"{config.model_type}, {layers} layers, hidden {hidden}, vocab {config.vocab_size}, "
             f"{windows.input_ids.shape[1]} tokens")
    return medians, shape, same_quantity(qa, ids, mask, types)


def report(name: str, shape: str, medians: dict[str, float], repeats: int, difference: float) -> None:
    ours = medians["ours"]
    print(f"\n{name} ({shape}; medians of {repeats})")
    print("| function | median ms | ratio |")
    print("| --- | ---: | --- |")
    print(f"| ours: answer + vanilla | {ours:.1f} | |")
    pipeline = medians["pipeline"]
    print(f"| pipeline: answer only | {pipeline:.1f} | (a) ours / pipeline = {ours / pipeline:.2f} |")
    print(f"| forward-only graph | {medians['forward']:.1f} | (b) ours / forward = {ours / medians['forward']:.2f} |")
    print(f"| seed one-hot, eager | {medians['seed']:.1f} | (c) seed / ours = {medians['seed'] / ours:.2f} |")
    compiled = medians["seed/tf"]
    print(f"| seed one-hot, tf.function | {compiled:.1f} | seed compiled / ours = {compiled / ours:.2f} |")
    print(f"seed's token norms vs ours (same target): max difference {difference:.1e} of the largest norm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each function (after 2 warm-ups)")
    parser.add_argument("--model", action="append", help="a QA checkpoint folder or hub name (repeatable)")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            models = [(m, m) for m in args.model]
        else:
            models = [("random DistilBERT-base", str(build_random_model("distilbert", Path(tmp) / "distilbert")))]
            if SHARED_MODEL.exists():
                models.append((SHARED_MODEL.name, str(SHARED_MODEL)))
        for name, path in models:
            medians, shape, difference = bench_model(path, args.repeats)
            report(name, shape, medians, args.repeats, difference)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
