"""The known-rationale task: the committed tiny model must answer held-out generated
questions, and every shipped saliency method must find the colour that decides the answer
among its top evidence words (the answer span left out, as the reply shows them), and its
top tokens must carry the answer better than random ones (sufficiency, 95% bootstrap interval).

The model (tests/data/rationale_model) is the output of `python -m explain_core.evaluation.rationale.train`.
Rates are printed (pytest -s); docs/evaluation.md records the 200-question figures
(`python -m explain_core.evaluation.tuning rationale`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from explain_core import load_model
from explain_core.engine.saliency import METHODS
from explain_core.evaluation.rationale.sanity import TOP
from explain_core.evaluation.rationale.task import COLORS, generate, vocabulary
from explain_core.evaluation.rationale.train import DEFAULT_OUT, SPECIAL
from explain_core.evaluation.stats import mean_interval
from explain_core.evaluation.tuning import rationale

# xdist: the whole module runs in one test process, so the study is run once.
pytestmark = pytest.mark.xdist_group("evaluation.test_rationale")

QUESTIONS = 80
# Cue in the top 3 evidence words. 95% is the bar (issue 22); a method below it is still offered
# for the reason the README's method table gives with its number (200 questions, docs/evaluation.md),
# and is held here to a floor a little under its measured rate, so that a regression fails.
CUE_FLOOR = {"vanilla": 0.95, "smoothgrad": 0.95, "grad_x_input": 0.90, "integrated_gradients": 0.85}


@pytest.fixture(scope="module")
def study() -> dict[str, dict[str, Any]]:
    result = rationale(list(METHODS), QUESTIONS)
    for label, row in result.items():
        cue = row["cue_rate"] if label == "random" else np.mean(row["cue"])
        print(f"\n{label}: cue in top {TOP} {cue:.1%}, sufficiency {np.mean(row['sufficiency']):.3f}", end="")
    return result


def test_generator_is_seeded_and_its_answers_sit_where_it_says():
    examples = generate(50, seed=7)
    assert examples == generate(50, seed=7) and examples != generate(50, seed=8)
    for e in examples:
        assert e.passage[e.answer_start:e.answer_start + len(e.answer)] == e.answer
        assert e.cue in COLORS and f" {e.cue} " in f" {e.question} "
        # The cue is what tells the sentences apart: exactly one passage sentence names it.
        assert sum(f" {e.cue} " in f" {s} " for s in e.passage.split(".")) == 1


def test_the_committed_tokenizer_knows_every_generated_word():
    """Fails when task.py gains a word but the model was not retrained."""
    tokenizer = load_model(str(DEFAULT_OUT)).tokenizer
    assert list(tokenizer.get_vocab()) and set(tokenizer.get_vocab()) == set(SPECIAL + vocabulary())


def test_model_answers_held_out_questions(study):
    assert np.mean(study[METHODS[0]]["correct"]) >= 0.95


@pytest.mark.parametrize("method", METHODS)
def test_saliency_ranks_the_cue_among_the_top_three_evidence_words(study, method):
    assert set(CUE_FLOOR) == set(METHODS)
    assert np.mean(study[method]["cue"]) >= CUE_FLOOR[method]


@pytest.mark.parametrize("method", METHODS)
def test_top_tokens_are_more_sufficient_than_random_ones(study, method):
    """Keeping only the method's top passage tokens (and the answer) must keep the answer
    better than keeping as many random ones: the whole 95% interval of the paired
    difference below zero."""
    gap = np.array(study[method]["sufficiency"]) - np.array(study["random"]["sufficiency"])
    _, _, high = mean_interval(gap)
    assert high < 0, (method, mean_interval(gap))


def test_random_ranking_rarely_finds_the_cue(study):
    """Guards the tests above against a task so small that any ranking would pass them."""
    assert study["random"]["cue_rate"] < 0.5
    assert all(np.mean(study[m]["cue"]) > study["random"]["cue_rate"] + 0.4 for m in METHODS)
    assert TOP == 3
