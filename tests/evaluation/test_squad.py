"""`qa-eval`: the official SQuAD 2.0 scoring rules, the rank statistics, and a real run on
generated questions with the committed known-rationale model."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from explain_core.errors import InputError
from explain_core.evaluation.rationale.task import generate
from explain_core.evaluation.rationale.train import DEFAULT_OUT
from explain_core.evaluation.squad import exact_match, f1_score, load_squad, main, normalize_answer
from explain_core.evaluation.stats import auroc, bootstrap_interval, mean_interval, rank_average, spearman
from explain_core.evaluation.tuning import candidate


def test_normalisation_follows_the_official_script():
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("an apple and a pear") == "apple and pear"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words


def test_exact_match_and_f1():
    assert exact_match("the Eiffel Tower.", "Eiffel tower") == 1.0
    # tokens "in 10th century" vs "10th and 11th centuries": one shared, precision 1/3, recall 1/4
    assert f1_score("in the 10th century", "10th and 11th centuries") == pytest.approx(2 / 7)
    assert f1_score("", "") == 1.0 and f1_score("", "France") == 0.0 and f1_score("France", "") == 0.0
    assert f1_score("Paris", "France") == 0.0


def test_squad_file_reading(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": "Paris is in France.", "qas": [
            {"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]},
            {"id": "b", "question": "Where is Rome?", "answers": [], "is_impossible": True}]}]}]}))
    first, second = load_squad(path)
    assert (first.answers, first.impossible, second.answers, second.impossible) == (["France"], False, [""], True)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        load_squad(path)
    path.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}))
    with pytest.raises(InputError, match="holds no questions"):
        load_squad(path)


def _brute_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    pairs = [(p, n) for p, n in itertools.product(scores[labels], scores[~labels])]
    return float(np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs]))


def test_rank_statistics_against_their_definitions():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    assert auroc(scores, labels) == pytest.approx(_brute_auroc(scores, labels))
    np.testing.assert_array_equal(rank_average(np.array([3.0, 1.0, 1.0, 2.0])), [4.0, 1.5, 1.5, 3.0])
    a, b = rng.random(30), rng.random(30)
    assert spearman(a, b) == pytest.approx(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])
    assert spearman(a, a ** 3) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)


def test_bootstrap_interval_over_questions():
    rng = np.random.default_rng(5)
    values = rng.normal(0.3, 1.0, 400)
    mean, low, high = mean_interval(values)
    assert low < mean < high and mean == pytest.approx(values.mean())
    # about 1.96 standard errors on either side
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(len(values)), rel=0.15)
    assert mean_interval(values) == (mean, low, high)  # seeded: the same interval every time
    small_low, small_high = mean_interval(values[:40])[1:]
    assert small_high - small_low > 2 * (high - low)
    # a paired statistic: the interval of a difference between two columns of the same questions
    other = values + 0.1 + rng.normal(0, 0.01, 400)
    paired = bootstrap_interval(lambda index: float((other[index] - values[index]).mean()), 400)
    assert paired[0] > 0.09 and paired[1] < 0.11


def test_tuning_candidates_name_their_parameters():
    ig = candidate("ig:mask:16")
    assert (ig.name, ig.baseline, ig.steps) == ("integrated_gradients", "mask", 16)
    sg = candidate("sg:0.05:8")
    assert (sg.name, sg.sigma, sg.samples) == ("smoothgrad", 0.05, 8)
    assert candidate("vanilla").name == "vanilla"
    for bad in ("ig:blur:8", "sg:x:8", "vanilla:3", "magic"):
        with pytest.raises(InputError):
            candidate(bad)


def _squad_file(tmp_path, count: int):
    paragraphs = [{"context": e.passage, "qas": [{"id": str(i), "question": e.question,
                                                 "answers": [{"text": e.answer, "answer_start": e.answer_start}]}]}
                  for i, e in enumerate(generate(count, seed=11))]
    path = tmp_path / "generated.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "generated", "paragraphs": paragraphs}]}))
    return path


def test_qa_eval_scores_generated_questions(tmp_path, capsys):
    main([str(_squad_file(tmp_path, 8)), "--model", str(DEFAULT_OUT), "--methods", "vanilla", "--json"])
    result = json.loads(capsys.readouterr().out)
    records = result["records"]
    assert result["questions"] == len(records) == 8
    assert result["exact"] == pytest.approx(100 * np.mean([r["exact"] for r in records]))
    assert all(r["exact"] == exact_match(r["prediction"], e.answer) for r, e in zip(records, generate(8, seed=11)))
    vanilla, random = result["faithfulness"]["vanilla"], result["faithfulness"]["random"]
    # The model reads the answer and the colour: hiding the top-ranked tokens must hurt far
    # more than hiding as many random ones, and keeping only them must hurt less.
    assert vanilla["comprehensiveness_span"] > random["comprehensiveness_span"] + 0.1
    assert vanilla["sufficiency_span"] < random["sufficiency_span"]


def test_qa_eval_user_errors_exit_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing.json"), "--model", str(DEFAULT_OUT)])
    assert exit_info.value.code == 2 and "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(_squad_file(tmp_path, 1)), "--model", str(DEFAULT_OUT), "--methods", "vanilla,magic"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "magic" in err and "Traceback" not in err
