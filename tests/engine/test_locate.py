"""Answer passes bounded by a memory budget: any split of the windows gives the same
logits, so peak memory can be set by configuration without changing an answer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explain_core.engine import load_model
from explain_core.engine.locate import _groups, answer_passes, locate_all
from explain_core.engine.windows import make_windows
from explain_core.settings import DecodeSettings

FILLER = "The lighthouse keepers wrote their logs by lamplight every night of the year. "
QUESTIONS = [
    ("Who built it?", "Robert Stevenson built the Bell Rock Lighthouse."),  # one window
    ("When was it lit?", FILLER * 40 + "It was first lit in 1811. " + FILLER * 10),  # many windows
    ("Where is it?", "It stands on a reef off the coast of Angus, Scotland."),
    ("What did they write?", FILLER * 25),
]


@pytest.mark.parametrize("budget", [1, 2_000_000, 10_000_000, 50_000_000])
def test_any_budget_gives_the_logits_and_answers_of_one_big_batch(tiny_model_dir: Path, budget: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    qa = load_model(str(tiny_model_dir))
    settings = DecodeSettings()
    all_windows = [make_windows(qa.tokenizer, q, p, settings) for q, p in QUESTIONS]
    assert [len(w) for w in all_windows][:2] == [1, len(all_windows[1])] and len(all_windows[1]) > 3
    whole = answer_passes(qa, all_windows, settings, budget=10**9)
    split = answer_passes(qa, all_windows, settings, budget=budget)
    for one, other in zip(whole, split):
        np.testing.assert_allclose(other.start_logits, one.start_logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(other.end_logits, one.end_logits, rtol=1e-5, atol=1e-5)
        assert other.graph_span == one.graph_span
    passages = [p for _, p in QUESTIONS]
    answers = {}
    for setting in (str(10**9), str(budget)):  # QA_MEMORY_BUDGET is what the worker and the CLI read
        monkeypatch.setenv("QA_MEMORY_BUDGET", setting)
        answers[setting] = [(f.best.answer, f.best.start) for f in locate_all(qa, all_windows, passages, settings)]
    assert answers[str(budget)] == answers[str(10**9)]


@pytest.mark.parametrize("budget", [1, 100, 384, 1000, 4000])
def test_groups_stay_within_the_budget_and_cover_every_window_once(tiny_model_dir: Path, budget: int) -> None:
    qa = load_model(str(tiny_model_dir))
    all_windows = [make_windows(qa.tokenizer, q, p, DecodeSettings()) for q, p in QUESTIONS]
    pieces = [(i, 0, len(w)) for i, w in enumerate(all_windows)]
    covered = []
    for group in _groups(pieces, all_windows, lambda width: budget // width):  # a token budget, for the test
        rows = sum(hi - lo for _, lo, hi in group)
        width = max(all_windows[i].input_ids.shape[1] for i, _, _ in group)
        assert rows * width <= budget or rows == 1  # a single window that is wider than the budget goes alone
        covered += [(i, r) for i, lo, hi in group for r in range(lo, hi)]
    assert covered == [(i, r) for i, w in enumerate(all_windows) for r in range(len(w))]
