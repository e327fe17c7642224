"""Saliency sanity checks on the known-rationale model: `python -m explain_core.evaluation.rationale.sanity`.

Two questions, each answered per method:
- cue recovery: is the colour that decides the answer among the top 3 words of the
  explanation? (compared with a random ranking of the same words);
- model randomization (Adebayo et al. 2018): re-initialise the QA head, then the encoder
  layers top-down, then the embeddings, and measure the Spearman correlation of the token
  saliency with the trained model's. A method whose map survives the randomization of the
  model it claims to explain is showing the input, not the model.
The tests assert the thresholds; `main` prints the tables that docs/evaluation.md shows.
"""
from __future__ import annotations

import argparse
import collections
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain_core.engine import QAModel, explain_batch, load_model
from explain_core.engine.locate import locate
from explain_core.engine.saliency import METHODS, AttributionContext, get_method
from explain_core.errors import InputError
from explain_core.evaluation.rationale.task import Example, generate
from explain_core.evaluation.rationale.train import DEFAULT_OUT
from explain_core.evaluation.stats import spearman
from explain_core.settings import DecodeSettings

TOP = 3
HELD_OUT_SEED = 2  # training uses seeds from 1000 on, the training script's check seed 1
RANDOM_DRAWS = 100
_PUNCT = re.compile(r"^\W+|\W+$")


def fresh_model(model_dir: Path) -> QAModel:
    """A private copy of the checkpoint (not load_model's cached one), safe to overwrite."""
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

    return QAModel(str(model_dir), TFAutoModelForQuestionAnswering.from_pretrained(str(model_dir)),
                   AutoTokenizer.from_pretrained(str(model_dir)))


def _bare(word: str) -> str:
    return _PUNCT.sub("", word).lower()


@dataclass(frozen=True)
class CueResult:
    """Share answered right; per method, the share of questions with the cue word in the top
    `TOP` words, and where it was found (`occurrences`: the question's cue, the passage's
    cue, and, for comparison, the answer word itself)."""

    accuracy: float
    cue_in_top: dict[str, float]
    occurrences: dict[str, dict[str, float]]
    random_baseline: float


def cue_recovery(qa: QAModel, examples: list[Example], methods: tuple[str, ...] = METHODS) -> CueResult:
    """Explain every example with every method; rank words by |weight| (signed methods too:
    a strongly negative word mattered as much) and look for the cue among the top ones."""
    items = [(e.question, e.passage) for e in examples]
    hits: dict[str, float] = {}
    occurrences: dict[str, dict[str, float]] = {}
    correct = 0
    rng = np.random.default_rng(0)
    random_hits = 0.0
    for m, method in enumerate(methods):
        found: collections.Counter[str] = collections.Counter()
        for example, exp in zip(examples, explain_batch(items, model=qa, method=method)):
            if isinstance(exp, InputError):
                raise exp
            top = sorted(exp.words, key=lambda w: -abs(w.weight))[:TOP]
            found["cue"] += any(_bare(w.text) == example.cue for w in top)
            for segment in ("question", "passage"):
                found[segment] += any(_bare(w.text) == example.cue and w.segment == segment for w in top)
            found["answer"] += any(_bare(w.text) == example.answer and w.segment == "passage" for w in top)
            if m == 0:
                correct += _bare(exp.answer) == example.answer
                is_cue = np.array([_bare(w.text) == example.cue for w in exp.words])
                random_hits += float(np.mean([is_cue[rng.permutation(len(is_cue))[:TOP]].any()
                                              for _ in range(RANDOM_DRAWS)]))
        hits[method] = found["cue"] / len(examples)
        occurrences[method] = {key: found[key] / len(examples) for key in ("question", "passage", "answer")}
    return CueResult(correct / len(examples), hits, occurrences, random_hits / len(examples))


# -- model randomization ---------------------------------------------------------------------
def _reinitialise(weights: list, std: float, rng: np.random.Generator) -> None:
    """Back to BERT's initial distribution: normal(0, std) matrices, zero biases, identity layer norms."""
    for weight in weights:
        name, shape = weight.name.lower(), tuple(weight.shape)
        if "layernorm" in name and "gamma" in name:
            value = np.ones(shape)
        elif "bias" in name or "beta" in name:
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, std, shape)
        weight.assign(value.astype(weight.dtype.as_numpy_dtype))


def randomization_stages(qa: QAModel) -> list[tuple[str, list]]:
    """Cascading stages, top-down: each stage's weights are re-drawn on top of the previous ones'."""
    layers = qa.model.bert.encoder.layer
    stages = [("QA head", qa.model.qa_outputs.weights)]
    stages += [(f"+ layer {i + 1} of {len(layers)}", layers[i].weights) for i in reversed(range(len(layers)))]
    stages.append(("+ embeddings (all random)", qa.model.bert.embeddings.weights))
    return stages


def _saliency(qa: QAModel, example: Example, method: str, target: tuple[int, int, int] | None
              ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Raw token saliency (question and passage tokens) of the span `target` (window, start,
    end); without a target, of the span this model answers. The same span is explained at
    every randomization stage, so only the model changes between maps, not the question asked."""
    located = locate(qa, example.question, example.passage, DecodeSettings())
    if target is None:
        target = (located.best.window, located.best.token_start, located.best.token_end)
    ctx = AttributionContext.for_window(qa, located.windows, *target)
    raw = get_method(method).attribute(ctx)
    return np.abs(raw[~ctx.special_tokens]), target


def randomization(model_dir: Path, examples: list[Example], methods: tuple[str, ...] = METHODS,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean Spearman correlation with the trained model's |saliency|, per stage and method.

    The trained maps come from the process-wide model (load_model), the randomized ones from
    a private copy, so nothing else in the process ever sees re-drawn weights.
    """
    trained = load_model(str(model_dir))
    targets = []
    reference: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for example in examples:
        _, target = _saliency(trained, example, methods[0], None)
        targets.append(target)
        for method in methods:
            reference[method].append(_saliency(trained, example, method, target)[0])
    qa = fresh_model(model_dir)
    rng = np.random.default_rng(seed)
    std = qa.model.config.initializer_range
    results: dict[str, dict[str, float]] = {}
    for stage, weights in randomization_stages(qa):
        _reinitialise(weights, std, rng)
        if any(w is qa.embedding_matrix for w in weights):
            # QAModel caches E^T E for the vanilla norm: a new wrapper follows the new embeddings.
            qa = QAModel(qa.name, qa.model, qa.tokenizer)
        results[stage] = {
            method: float(np.mean([spearman(reference[method][i], _saliency(qa, e, method, targets[i])[0])
                                   for i, e in enumerate(examples)]))
            for method in methods
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT, help=f"model folder (default {DEFAULT_OUT})")
    parser.add_argument("--questions", type=int, default=200, help="held-out questions for cue recovery")
    parser.add_argument("--randomization-questions", type=int, default=50)
    args = parser.parse_args(argv)
    cues = cue_recovery(load_model(str(args.model)), generate(args.questions, HELD_OUT_SEED))
    print(f"held-out questions: {args.questions}, answered correctly: {cues.accuracy:.1%}\n")
    print(f"| method | cue in the top {TOP} | question's cue in the top {TOP} | passage's cue in the top {TOP} "
          f"| answer word in the top {TOP} |\n|---|---|---|---|---|")
    for method, rate in cues.cue_in_top.items():
        where = cues.occurrences[method]
        print(f"| {method} | {rate:.1%} | {where['question']:.1%} | {where['passage']:.1%} | {where['answer']:.1%} |")
    print(f"| random ranking (baseline) | {cues.random_baseline:.1%} | | | |\n")
    stages = randomization(args.model, generate(args.randomization_questions, HELD_OUT_SEED))
    methods = list(next(iter(stages.values())))
    print(f"Spearman correlation with the trained model's |saliency| ({args.randomization_questions} questions)\n")
    print("| randomized (cascading) | " + " | ".join(methods) + " |\n" + "|---" * (len(methods) + 1) + "|")
    for stage, row in stages.items():
        print(f"| {stage} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")


if __name__ == "__main__":
    main()
