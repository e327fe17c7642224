"""Saliency methods against references that do not share their shortcuts.

The vanilla map is checked against the seed's literal one-hot formulation, gradients
against finite differences, integrated gradients against completeness, SmoothGrad at
sigma 0 against vanilla: each test would fail if the shortcut it guards were wrong.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from explain_core import explain, load_model
from explain_core.engine.decode import decode
from explain_core.engine.locate import answer_passes
from explain_core.engine.model import QAModel
from explain_core.engine.saliency import METHODS, REGISTRY, AttributionContext, get_method
from explain_core.engine.saliency.integrated_gradients import IntegratedGradients
from explain_core.engine.saliency.smoothgrad import SmoothGrad
from explain_core.engine.windows import make_windows
from explain_core.present.summary import METHOD_LABELS
from explain_core.settings import DecodeSettings

QUESTION = "Which river flows through the old city?"
PASSAGE = ("The old city was built on both banks of the Vltava, a river that flows north to the Elbe. "
           "Merchants crossed the stone bridge every morning, and in 1357 the king laid its first stone.")


def _context(model_dir, question: str = QUESTION, passage: str = PASSAGE, start: int = 20,
             end: int = 22) -> AttributionContext:
    qa = load_model(str(model_dir))
    windows = make_windows(qa.tokenizer, question, passage, DecodeSettings())
    return AttributionContext.for_window(qa, windows, 0, start, end)


def _one_hot_reference(ctx: AttributionContext) -> np.ndarray:
    """The seed's code, literally: a [length, vocab] one-hot input, its gradient, L2 norm per token."""
    qa = ctx.model
    matrix = tf.convert_to_tensor(qa.embedding_matrix)
    one_hot = tf.Variable(tf.one_hot(ctx.input_ids[0], depth=matrix.shape[0], dtype=tf.float32))
    with tf.GradientTape() as tape:
        embeds = tf.matmul(one_hot, matrix)[tf.newaxis]
        kwargs = {"token_type_ids": ctx.token_type_ids} if qa.uses_token_types else {}
        out = qa.model(input_ids=None, inputs_embeds=embeds, attention_mask=ctx.attention_mask, training=False,
                       **kwargs)
        target = out.start_logits[0, ctx.target_start] + out.end_logits[0, ctx.target_end]
    grad = tape.gradient(target, one_hot).numpy()
    return np.linalg.norm(grad, axis=-1)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_vanilla_equals_the_literal_one_hot_gradient(tiny_model_dirs, kind):
    ctx = _context(tiny_model_dirs[kind])
    ours = get_method("vanilla").attribute(ctx)
    reference = _one_hot_reference(ctx)
    np.testing.assert_allclose(ours / ours.max(), reference / reference.max(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours, reference, rtol=1e-4)


def test_embedding_gradient_matches_finite_differences(tiny_model_dir):
    ctx = _context(tiny_model_dir)
    grad = ctx.plain_gradient().astype(np.float64)
    embeds = ctx.embeddings().astype(np.float64)
    rng = np.random.default_rng(1)
    # float32 finite differences resolve only derivatives well above their rounding noise:
    # probe the three most influential tokens, along unit directions mixing their gradient
    # with a random component (a wrong sign, scale or token would all fail).
    for token in np.argsort(-np.linalg.norm(grad, axis=1))[:3]:
        direction = np.zeros_like(embeds)
        mixed = grad[token] / np.linalg.norm(grad[token]) + rng.normal(size=embeds.shape[1]) / np.sqrt(embeds.shape[1])
        direction[token] = mixed / np.linalg.norm(mixed)
        eps = 1e-3  # embedding rows have norm ~0.1: a step of 1% stays in the linear regime
        values, _ = ctx.targets_and_gradients(np.stack([embeds + eps * direction, embeds - eps * direction]))
        numeric = (float(values[0]) - float(values[1])) / (2 * eps)
        analytic = float((grad * direction).sum())
        assert numeric == pytest.approx(analytic, rel=2e-2)


def test_grad_x_input_is_the_gradient_entry_of_the_present_token(tiny_model_dir):
    ctx = _context(tiny_model_dir)
    ours = get_method("grad_x_input").attribute(ctx)
    matrix = ctx.model.embedding_matrix.numpy().astype(np.float64)
    one_hot_grad = ctx.plain_gradient().astype(np.float64) @ matrix.T  # [length, vocab]
    expected = one_hot_grad[np.arange(len(ours)), ctx.input_ids[0]]
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("baseline", IntegratedGradients.BASELINES)
def test_integrated_gradients_are_complete_at_64_steps_per_reference(tiny_model_dirs, kind, baseline):
    ctx = _context(tiny_model_dirs[kind])
    references = 2 if baseline == "mean" else 1
    method = IntegratedGradients(steps=64 * references, baseline=baseline, references=2)
    attributions = method.attribute(ctx)
    assert ctx.diagnostics["ig_delta"] < 0.01
    bases = method.baselines(ctx, ctx.embeddings())
    assert len(bases) == references
    values, _ = ctx.targets_and_gradients(np.stack([*bases, ctx.embeddings()]))
    assert attributions.sum() == pytest.approx(values[-1] - values[:-1].mean(), rel=0.01)
    # special tokens keep their embedding in every baseline, so they get no attribution
    assert np.all(attributions[ctx.special_tokens] == 0)
    assert all(np.array_equal(b[ctx.special_tokens], ctx.embeddings()[ctx.special_tokens]) for b in bases)


def test_integrated_gradients_baselines_differ_and_unknown_ones_are_refused(tiny_model_dir):
    ctx = _context(tiny_model_dir)
    embeds = ctx.embeddings()
    words = ~ctx.special_tokens
    first = {b: IntegratedGradients(baseline=b).baselines(ctx, embeds)[0][words] for b in IntegratedGradients.BASELINES}
    assert not first["zero"].any() and len({v.tobytes() for v in first.values()}) == len(first)
    with pytest.raises(ValueError, match="baseline"):
        IntegratedGradients(baseline="blur")


def test_smoothgrad_with_no_noise_is_vanilla(tiny_model_dir):
    ctx = _context(tiny_model_dir)
    np.testing.assert_allclose(SmoothGrad(samples=4, sigma=0.0).attribute(ctx),
                               get_method("vanilla").attribute(ctx), rtol=1e-5)
    noisy = SmoothGrad(samples=4, sigma=0.3).attribute(ctx)
    assert not np.allclose(noisy, get_method("vanilla").attribute(ctx), rtol=1e-3)
    # A fixed seed: the same noise, so the same map. Not bit for bit: a graph runs eagerly for its first
    # EAGER_CALLS calls, then traced, and the two round float32 differently (~1e-7 relative); other noise
    # would move the map by percent.
    np.testing.assert_allclose(noisy, SmoothGrad(samples=4, sigma=0.3).attribute(ctx), rtol=1e-5, atol=0)


def test_registry_names_every_method_once():
    assert set(METHODS) == {"vanilla", "grad_x_input", "integrated_gradients", "smoothgrad"}
    assert all(REGISTRY[name].name == name for name in METHODS)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("method", ["vanilla", "grad_x_input"])
def test_explanation_targets_the_shown_span(tiny_model_dirs, kind, method):
    """The gradient from the fused answer pass equals a fresh gradient of the decoded span."""
    settings = DecodeSettings(handle_impossible_answer=False)
    exp = explain(QUESTION, PASSAGE, model=str(tiny_model_dirs[kind]), method=method, settings=settings)
    assert exp.target == "span" and not exp.no_answer
    qa = load_model(str(tiny_model_dirs[kind]))
    windows = make_windows(qa.tokenizer, QUESTION, PASSAGE, settings)
    answer_pass = answer_passes(qa, [windows], settings)[0]
    best = decode(windows, PASSAGE, answer_pass.start_logits, answer_pass.end_logits, settings)[0]
    assert (best.start, best.end) == (exp.start, exp.end)
    assert answer_pass.graph_span == (best.token_start, best.token_end)  # the graph chose the decoded span
    ctx = _context(tiny_model_dirs[kind], start=best.token_start, end=best.token_end)
    fresh = get_method(method).attribute(ctx)
    np.testing.assert_allclose([t.weight for t in exp.tokens], _shown(fresh, tiny_model_dirs[kind]),
                               rtol=1e-4, atol=1e-5)


def _shown(raw: np.ndarray, model_dir, question: str = QUESTION, passage: str = PASSAGE) -> np.ndarray:
    """Raw token scores as `Explanation.tokens` shows them: special tokens out, max-normalised."""
    enc = make_windows(load_model(str(model_dir)).tokenizer, question, passage, DecodeSettings()).encodings[0]
    keep = [i for i, sid in enumerate(enc.sequence_ids) if sid is not None and enc.offsets[i][1] > enc.offsets[i][0]]
    return raw[keep] / np.abs(raw[keep]).max()


def test_no_answer_explains_the_null_score(tiny_model_dir):
    """A QA head pointed at the [CLS] state makes "no answer" win; the null logits are explained."""
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

    from explain_core.engine.model import QAModel

    qa = QAModel("null-biased", TFAutoModelForQuestionAnswering.from_pretrained(tiny_model_dir),
                 AutoTokenizer.from_pretrained(tiny_model_dir))
    ctx = _context(tiny_model_dir, start=0, end=0)
    hidden = qa.model(input_ids=ctx.input_ids, attention_mask=ctx.attention_mask, token_type_ids=ctx.token_type_ids,
                      output_hidden_states=True).hidden_states[-1][0].numpy()
    direction = hidden[0] / np.linalg.norm(hidden[0])
    qa.model.qa_outputs.kernel.assign(np.stack([direction, direction], axis=1) * 4.0)
    qa.model.qa_outputs.bias.assign(np.zeros(2))

    exp = explain(QUESTION, PASSAGE, model=qa, settings=DecodeSettings(handle_impossible_answer=True))
    assert exp.no_answer and exp.target == "null" and exp.answer == "" and exp.start == exp.end == 0
    assert exp.best_rejected is not None and exp.best_rejected.score < exp.score
    ctx.model = qa
    fresh = get_method("vanilla").attribute(ctx)
    np.testing.assert_allclose([t.weight for t in exp.tokens], _shown(fresh, tiny_model_dir), rtol=1e-4, atol=1e-5)


def test_graph_functions_do_not_retrace_per_passage_length(tiny_model_dir):
    qa = load_model(str(tiny_model_dir))
    qa.trace()
    for words in (5, 40, 120, 300, 900):  # one window up to several windows
        explain(QUESTION, " ".join(PASSAGE.split()[:20] * (words // 20 + 1))[: words * 6], model=qa)
    assert [f.tracing_count() for f in (qa.answer_and_gradient, qa.logits, qa.gradient_at)] == [1, 1, 1]


def test_first_calls_run_eagerly_with_the_graphs_results(tiny_model_dir):
    """A process that answers one question never pays for a trace; later calls use the graph
    and give the same answers and weights."""
    shared = load_model(str(tiny_model_dir))
    qa = QAModel(shared.name, shared.model, shared.tokenizer)  # fresh graph functions, same weights
    eager = [explain(QUESTION, PASSAGE, model=qa, method=m, faithfulness=True) for m in ("vanilla", "smoothgrad")]
    assert [f.tracing_count() for f in (qa.answer_and_gradient, qa.logits, qa.gradient_at)] == [0, 0, 0]
    qa.trace()
    traced = [explain(QUESTION, PASSAGE, model=qa, method=m, faithfulness=True) for m in ("vanilla", "smoothgrad")]
    for one, other in zip(eager, traced):
        assert (one.answer, one.start, one.end) == (other.answer, other.start, other.end)
        np.testing.assert_allclose([w.weight for w in one.words], [w.weight for w in other.words], atol=1e-4)
        assert one.faithfulness.comprehensiveness == pytest.approx(other.faithfulness.comprehensiveness, abs=1e-4)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
@pytest.mark.parametrize("passage", [
    "Merchants crossed the stone bridge, every morning (at 6:30)…\n\nThe café opened late.",
    "\nHis boat, the Gaviota, was only 9 metres long.",  # byte-level BPE has a token for the newline
    " \t x\n\n y ",
    "Dr.",  # a window shorter than max_answer_len
])
def test_tokens_and_words_point_into_their_text(tiny_model_dirs, kind, passage):
    question = "Where did the  merchants cross?"
    exp = explain(question, passage, model=str(tiny_model_dirs[kind]))
    assert exp.answer == passage[exp.start:exp.end]
    for item in exp.tokens + exp.words:
        source = question if item.segment == "question" else passage
        assert item.text == source[item.start:item.end] and item.text
        assert -1.0 <= item.weight <= 1.0
    words = [w.text for w in exp.words if w.segment == "passage"]
    assert words == passage.split()
    assert max(abs(w.weight) for w in exp.words) == pytest.approx(1.0)


def test_every_saliency_method_has_a_label_in_the_summary() -> None:
    """A new method module must also say how people see its name (Slack, the picture)."""
    assert set(METHODS) <= set(METHOD_LABELS), sorted(set(METHODS) - set(METHOD_LABELS))
