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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain_core.engine import QAModel, explain_batch, load_model
from explain_core.engine.locate import locate
from explain_core.engine.saliency import METHODS, AttributionContext, SaliencyMethod, resolve_method
from explain_core.errors import InputError
from explain_core.evaluation.rationale.task import Example, generate
from explain_core.evaluation.rationale.train import DEFAULT_OUT
from explain_core.evaluation.stats import mean_interval, spearman
from explain_core.explanation import Explanation, evidence
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
    """Share answered right; per method, the share of questions with the cue word among the
    `TOP` strongest evidence words (`Explanation.evidence`: the answer span left out, as the
    reply shows them), its 95% bootstrap interval over questions (`cue_interval`), where it was
    found (`occurrences`: the question's cue, the passage's cue; and, for comparison, the cue
    and the answer word in the top `TOP` of all words, the answer included)."""

    accuracy: float
    cue_in_top: dict[str, float]
    cue_interval: dict[str, tuple[float, float]]
    occurrences: dict[str, dict[str, float]]
    random_baseline: float


def cue_hits(examples: list[Example], explanations: list[Explanation | InputError]) -> dict[str, np.ndarray]:
    """Per question of `explain_batch`'s explanations of `examples` (bool arrays): "cue" among
    the top evidence words, "question"/"passage": that occurrence of the cue; "cue_all" /
    "answer_all": the cue / the answer word among the top words when the answer span is not
    left out; "correct": the model answered right.
    Words rank by |weight| (signed methods too: a strongly negative word mattered as much)."""
    found: dict[str, list[bool]] = collections.defaultdict(list)
    for example, exp in zip(examples, explanations):
        if isinstance(exp, InputError):
            raise exp
        top = exp.evidence()[:TOP]
        every = evidence(exp.words, None)[:TOP]
        found["cue"].append(any(_bare(w.text) == example.cue for w in top))
        for segment in ("question", "passage"):
            found[segment].append(any(_bare(w.text) == example.cue and w.segment == segment for w in top))
        found["cue_all"].append(any(_bare(w.text) == example.cue for w in every))
        found["answer_all"].append(any(_bare(w.text) == example.answer and w.segment == "passage" for w in every))
        found["correct"].append(_bare(exp.answer) == example.answer)
    return {key: np.array(values) for key, values in found.items()}


def random_cue_rate(qa: QAModel, examples: list[Example]) -> float:
    """The cue-in-top rate of a random ranking of the same evidence words (the baseline)."""
    rng = np.random.default_rng(0)
    hits = 0.0
    for example, exp in zip(examples, explain_batch([(e.question, e.passage) for e in examples], model=qa,
                                                     method=METHODS[0])):
        if isinstance(exp, InputError):
            raise exp
        is_cue = np.array([_bare(w.text) == example.cue for w in exp.evidence()])
        hits += float(np.mean([is_cue[rng.permutation(len(is_cue))[:TOP]].any() for _ in range(RANDOM_DRAWS)]))
    return hits / len(examples)


def cue_recovery(qa: QAModel, examples: list[Example], methods: tuple[str, ...] = METHODS) -> CueResult:
    """Explain every example with every method and look for the cue among the top evidence words."""
    items = [(e.question, e.passage) for e in examples]
    per_method = {method: cue_hits(examples, explain_batch(items, model=qa, method=method)) for method in methods}
    return CueResult(
        accuracy=float(per_method[methods[0]]["correct"].mean()),
        cue_in_top={m: float(h["cue"].mean()) for m, h in per_method.items()},
        cue_interval={m: mean_interval(h["cue"])[1:] for m, h in per_method.items()},
        occurrences={m: {key: float(h[key].mean()) for key in ("question", "passage", "cue_all", "answer_all")}
                     for m, h in per_method.items()},
        random_baseline=random_cue_rate(qa, examples),
    )


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


def _saliency(qa: QAModel, example: Example, method: str | SaliencyMethod, target: tuple[int, int, int] | None
              ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Raw token saliency (question and passage tokens) of the span `target` (window, start,
    end); without a target, of the span this model answers. The same span is explained at
    every randomization stage, so only the model changes between maps, not the question asked."""
    located = locate(qa, example.question, example.passage, DecodeSettings())
    if target is None:
        target = (located.best.window, located.best.token_start, located.best.token_end)
    ctx = AttributionContext.for_window(qa, located.windows, *target)
    raw = resolve_method(method).attribute(ctx)
    return np.abs(raw[~ctx.special_tokens]), target


def randomization(model_dir: Path, examples: list[Example],
                  methods: Mapping[str, str | SaliencyMethod] | tuple[str, ...] = METHODS,
                  seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean Spearman correlation with the trained model's |saliency|, per stage and method
    (named, or label -> configured instance: the tuning study checks each candidate).

    The trained maps come from the process-wide model (load_model), the randomized ones from
    a private copy, so nothing else in the process ever sees re-drawn weights.
    """
    methods = {m: m for m in methods} if isinstance(methods, tuple) else dict(methods)
    trained = load_model(str(model_dir))
    targets = []
    reference: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for example in examples:
        _, target = _saliency(trained, example, "vanilla", None)
        targets.append(target)
        for label, method in methods.items():
            reference[label].append(_saliency(trained, example, method, target)[0])
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
            label: float(np.mean([spearman(reference[label][i], _saliency(qa, e, method, targets[i])[0])
                                  for i, e in enumerate(examples)]))
            for label, method in methods.items()
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
    print(f"| method | cue in the top {TOP} evidence words [95% CI] | question's cue | passage's cue "
          f"| all words, answer included: cue in the top {TOP} | answer word in the top {TOP} |\n"
          "|---|---|---|---|---|---|")
    for method, rate in cues.cue_in_top.items():
        where, (low, high) = cues.occurrences[method], cues.cue_interval[method]
        print(f"| {method} | {rate:.1%} [{low:.1%}, {high:.1%}] | {where['question']:.1%} | {where['passage']:.1%} "
              f"| {where['cue_all']:.1%} | {where['answer_all']:.1%} |")
    print(f"| random ranking (baseline) | {cues.random_baseline:.1%} | | | | |\n")
    stages = randomization(args.model, generate(args.randomization_questions, HELD_OUT_SEED))
    methods = list(next(iter(stages.values())))
    print(f"Spearman correlation with the trained model's |saliency| ({args.randomization_questions} questions)\n")
    print("| randomized (cascading) | " + " | ".join(methods) + " |\n" + "|---" * (len(methods) + 1) + "|")
    for stage, row in stages.items():
        print(f"| {stage} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")


if __name__ == "__main__":
    main()
