"""Faithfulness scores: batched masking must equal masking one variant at a time."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from explain_core import Explanation, explain, load_model
from explain_core.engine.faithfulness import FRACTIONS, masked_inputs, measure, span_probabilities
from explain_core.engine.locate import locate
from explain_core.engine.saliency import AttributionContext, get_method
from explain_core.engine.windows import make_windows
from explain_core.settings import DecodeSettings

QUESTION = "Who laid the first stone of the bridge?"
PASSAGE = ("The old city was built on both banks of the river. Merchants crossed the stone bridge every "
           "morning, and in 1357 the king laid its first stone while the bishop watched from the tower.")


@pytest.fixture()
def explained(tiny_model_dir) -> tuple[Explanation, AttributionContext, np.ndarray]:
    settings = DecodeSettings(handle_impossible_answer=False)
    exp = explain(QUESTION, PASSAGE, model=str(tiny_model_dir), faithfulness=True, settings=settings)
    qa = load_model(str(tiny_model_dir))
    windows = make_windows(qa.tokenizer, QUESTION, PASSAGE, settings)
    enc = windows.encodings[0]
    passage_tokens = [i for i, sid in enumerate(enc.sequence_ids) if sid == 1]
    start = next(i for i in passage_tokens if enc.offsets[i][0] >= exp.start)
    end = max(i for i in passage_tokens if enc.offsets[i][1] <= exp.end)
    ctx = AttributionContext.for_window(qa, windows, 0, start, end)
    return exp, ctx, get_method("vanilla").attribute(ctx)


def test_faithfulness_is_in_the_result_and_its_json(explained):
    exp, _, _ = explained
    f = exp.faithfulness
    assert f is not None and [c["fraction"] for c in f.curve] == list(FRACTIONS)
    assert f.comprehensiveness == pytest.approx(np.mean([f.original - c["hidden"] for c in f.curve]))
    assert f.sufficiency == pytest.approx(np.mean([f.original - c["kept_only"] for c in f.curve]))
    assert f.sentence.startswith("hiding the 10% most salient passage words")
    assert f"{f.original:.0%}" in f.sentence
    assert exp.timings_ms["faithfulness"] == f.extra_ms > 0
    assert Explanation.from_dict(exp.to_dict()) == exp


def test_original_probability_is_the_pipeline_score_of_a_single_window_answer(explained):
    exp, _, _ = explained
    assert exp.windows == 1
    assert exp.faithfulness.original == pytest.approx(exp.score, rel=1e-4)


def test_batched_masks_equal_masking_one_variant_at_a_time(explained):
    """... and the answer's own tokens are never masked: they are the answer, not its evidence."""
    _, ctx, raw = explained
    order = np.argsort(-np.abs(raw), kind="stable")
    span = np.arange(ctx.target_start, ctx.target_end + 1)
    passage = [i for i in order if ctx.passage_tokens[i] and i not in span]
    assert len(passage) == ctx.passage_tokens.sum() - len(span) and ctx.passage_tokens[span].all()
    mask_id = ctx.model.tokenizer.mask_token_id
    rows = masked_inputs(ctx, order)
    for row, fraction in zip(rows[: len(FRACTIONS)], FRACTIONS):
        top = passage[: max(1, math.ceil(fraction * len(passage)))]
        expected = ctx.input_ids[0].copy()
        expected[top] = mask_id
        np.testing.assert_array_equal(row, expected)
    for row, fraction in zip(rows[len(FRACTIONS):], FRACTIONS):
        top = set(passage[: max(1, math.ceil(fraction * len(passage)))])
        hidden = [i for i in passage if i not in top]
        assert set(np.flatnonzero(row != ctx.input_ids[0])) <= set(hidden)
        assert all(row[i] == mask_id for i in hidden) and all(row[i] == ctx.input_ids[0][i] for i in top)
    assert (rows[:, span] == ctx.input_ids[0, span]).all()
    one_by_one = [span_probabilities(ctx, r[np.newaxis])[0] for r in rows]
    np.testing.assert_allclose(span_probabilities(ctx, rows), one_by_one, rtol=1e-4)


def test_hiding_everything_salient_differs_from_hiding_nothing(explained):
    _, ctx, raw = explained
    result = measure(ctx, raw, fractions=(1.0,))
    assert result.curve[0]["hidden"] != pytest.approx(result.original, rel=1e-3)
    assert result.curve[0]["kept_only"] == pytest.approx(result.original, rel=1e-5)  # keeping 100% hides nothing


def test_the_answer_pass_logits_save_the_unmasked_row_and_change_nothing(explained, monkeypatch):
    """The located context carries its window's logits: faithfulness then runs only the masked
    rows, and its scores equal those of a context that runs the unmasked row itself."""
    _, ctx, _ = explained
    known = locate(ctx.model, QUESTION, PASSAGE, DecodeSettings(handle_impossible_answer=False)).context(ctx.model)
    assert known.logits is not None
    unknown = dataclasses.replace(known, logits=None)
    raw = get_method("vanilla").attribute(unknown)
    rows: list[int] = []
    logits = ctx.model.logits
    monkeypatch.setattr(ctx.model, "logits", lambda ids, *rest: (rows.append(len(ids)), logits(ids, *rest))[1])
    without, with_logits = measure(unknown, raw), measure(known, raw)
    assert rows == [1 + 2 * len(FRACTIONS), 2 * len(FRACTIONS)]
    assert with_logits.original == pytest.approx(without.original, rel=1e-5)
    for ours, theirs in zip(with_logits.curve, without.curve, strict=True):  # batches of 6 and 7 round apart
        assert ours == pytest.approx(theirs, rel=1e-5)
    assert (with_logits.comprehensiveness, with_logits.sufficiency) == pytest.approx(
        (without.comprehensiveness, without.sufficiency), abs=1e-6)
