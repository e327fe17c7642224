"""Model-randomization sanity check (Adebayo et al. 2018) on the known-rationale model.

Re-drawing the QA head, then each encoder layer top-down, then the embeddings must take the
saliency maps away from the trained model's: a map that stays the same while the model it
explains is destroyed is a picture of the input, not of the model. The correlations per
stage are printed (pytest -s) and recorded in docs/evaluation.md.
"""
from __future__ import annotations

import pytest

from explain_core import explain, load_model
from explain_core.engine.saliency import METHODS
from explain_core.evaluation.rationale.sanity import HELD_OUT_SEED, randomization
from explain_core.evaluation.rationale.task import generate
from explain_core.evaluation.rationale.train import DEFAULT_OUT

# xdist: the whole module runs in one test process, so the randomization run is done once.
pytestmark = pytest.mark.xdist_group("evaluation.test_sanity_randomization")

QUESTIONS = 20


@pytest.fixture(scope="module")
def stages() -> dict[str, dict[str, float]]:
    result = randomization(DEFAULT_OUT, generate(QUESTIONS, HELD_OUT_SEED))
    for stage, row in result.items():
        print(f"\n{stage}: " + ", ".join(f"{m} {v:.3f}" for m, v in row.items()), end="")
    return result


@pytest.mark.parametrize("method", METHODS)
def test_correlation_with_the_trained_map_is_below_0_3_when_all_is_random(stages, method):
    assert list(stages)[-1].endswith("(all random)")
    assert stages[list(stages)[-1]][method] < 0.3


@pytest.mark.parametrize("method", METHODS)
def test_correlation_falls_with_each_randomized_layer(stages, method):
    """Head, then each encoder layer: every step lowers the correlation. (The last step, the
    embeddings, starts from a map already near the 0.1-0.2 floor that unrelated maps of the
    same tokens share, so only the threshold above applies to it.)"""
    values = [row[method] for stage, row in stages.items() if not stage.endswith("(all random)")]
    assert all(later < earlier for earlier, later in zip(values, values[1:])), values
    assert values[0] - values[-1] > 0.3, values


def test_randomization_leaves_the_cached_model_alone(stages):
    """The check re-draws weights of its own copy; the process-wide model must still answer."""
    example = generate(1, HELD_OUT_SEED)[0]
    assert explain(example.question, example.passage, model=load_model(str(DEFAULT_OUT))).answer == example.answer
