"""Every TF question-answering architecture of transformers 4.x is answered, or refused in one line.

"Any BERT family" is the promise. For each architecture a tiny random checkpoint (2 layers,
hidden 32, its own tokenizer family: WordPiece, byte-level BPE, SentencePiece-style Unigram
with Metaspace offsets) must give the transformers pipeline's answers and a finite, complete
explanation with every saliency method, both eagerly and through the traced graphs the worker
uses. The architectures the engine cannot serve are refused when the model loads, with one
line that says why: by `load_model`, by `qa-explain` (exit code 2) and in the worker's result.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.engine.test_pipeline_parity import _mismatch
from tests.support.qa_pairs import generate_pairs
from tests.support.tiny_models import KINDS, build_tiny_model

_POOL = generate_pairs(60, seed=7)
# Questions of at most 12 words (never truncated, even by the 750-piece Unigram vocabularies);
# passages in one window (the fused answer+gradient graph) and in several (window stitching).
ONE_WINDOW = [_POOL[i] for i in (3, 5, 7)]
SEVERAL_WINDOWS = [_POOL[i] for i in (2, 28, 52)]
EXPLAINED = _POOL[5]  # "How \ncondor \nA \nMüller 17 some ?": newlines and an accent in the question
_WORD = re.compile(r"\S+")


def by_kind(kinds: tuple[str, ...]) -> list[Any]:
    """`kinds` as parameters that keep each architecture's tests in one test process under xdist,
    so its checkpoint is built and loaded once (`checkpoint`, `engine_model` are per process)."""
    return [pytest.param(kind, marks=pytest.mark.xdist_group(f"arch-{kind}")) for kind in kinds]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The tiny checkpoint folder of an architecture, built on first use and kept for the module."""
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            built[kind] = build_tiny_model(kind, tmp_path_factory.mktemp(f"arch-{kind}"))
        return built[kind]

    return get


@pytest.fixture(scope="module")
def engine_model(checkpoint: Callable[[str], Path]) -> Iterator[Callable[[str], Any]]:
    """The engine's model of an architecture, its weights loaded once for the module (more
    models than QA_MODEL_CACHE keeps). Each call gives a fresh `QAModel` on them, whose first
    calls run eagerly as in a one-shot `qa-explain`: tracing every architecture's graphs costs
    about 4 s each, so only the slow graph test pays for it."""
    from explain_core.engine.model import QAModel, load_model

    loaded: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in loaded:
            loaded[kind] = load_model(str(checkpoint(kind)))
        return QAModel(loaded[kind].name, loaded[kind].model, loaded[kind].tokenizer)

    yield get
    loaded.clear()


def test_every_tf_question_answering_architecture_is_answered_or_refused() -> None:
    """The list of architectures is transformers' own: a new one cannot slip through untested."""
    from transformers.models.auto.modeling_tf_auto import TF_MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

    from explain_core.engine.model import UNSUPPORTED_ARCHITECTURES
    from tests.support.tiny_models import _KINDS

    answered = {model_type for _, model_type, _ in _KINDS.values()}
    assert not answered & set(UNSUPPORTED_ARCHITECTURES)
    assert answered | set(UNSUPPORTED_ARCHITECTURES) == set(TF_MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES)


@pytest.mark.parametrize("kind", by_kind(KINDS))
def test_answers_equal_the_pipeline(kind: str, checkpoint: Callable[[str], Path],
                                    engine_model: Callable[[str], Any]) -> None:
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering, pipeline

    from explain_core import explain
    from explain_core.engine.windows import make_windows
    from explain_core.settings import DecodeSettings

    path, qa = checkpoint(kind), engine_model(kind)
    reference = TFAutoModelForQuestionAnswering.from_pretrained(path)
    assert reference.config.model_type == qa.model.config.model_type
    # The engine loads without random initial values (`_load_weights`): the same weights all the same.
    assert all(np.array_equal(ours, theirs)
               for ours, theirs in zip(qa.model.get_weights(), reference.get_weights(), strict=True))
    # dtype=None: without it the TF pipeline reaches for torch (../shared/models/README.md).
    pipe = pipeline("question-answering", model=reference, tokenizer=AutoTokenizer.from_pretrained(path),
                    framework="tf", dtype=None)
    failures = []
    for index, (question, passage) in enumerate(ONE_WINDOW + SEVERAL_WINDOWS):
        null = index % 2 == 1  # the no-answer rule on every other question
        theirs = pipe(question=question, context=passage, handle_impossible_answer=null)
        exp = explain(question, passage, model=qa, method="vanilla",
                      settings=DecodeSettings(handle_impossible_answer=null))
        assert not exp.question_truncated
        assert (exp.windows == 1) == (index < len(ONE_WINDOW)), f"pair #{index} has {exp.windows} windows"
        ours = {"answer": exp.answer, "start": exp.start, "end": exp.end, "score": exp.score}
        reason = _mismatch(ours, theirs | {"score": min(1.0, theirs["score"])}, passage)
        if reason:
            failures.append(f"#{index} {reason}: ours={ours} pipeline={theirs}")
    assert not failures, "\n".join(failures)
    # A peaked softmax, so that the score comparisons above are not vacuous.
    windows = make_windows(qa.tokenizer, *EXPLAINED, DecodeSettings())
    start, _ = qa.logits(windows.input_ids, windows.attention_mask, windows.token_type_ids)
    assert start.numpy().std() > 1.0


@pytest.mark.parametrize("kind", by_kind(KINDS))
def test_the_gradient_is_taken_through_the_model_that_answers(kind: str, engine_model: Callable[[str], Any]) -> None:
    """Gradients are taken at the word embeddings (`inputs_embeds`), answers come from the token
    ids: both must be the same function. Funnel skips its embedding layer norm for
    `inputs_embeds`, and Longformer's global attention on the question is set from the ids; left
    alone, both explained (and, for one-window passages, answered with) another function."""
    from explain_core.engine.locate import locate
    from explain_core.settings import DecodeSettings

    qa = engine_model(kind)
    found = locate(qa, *EXPLAINED, DecodeSettings())  # one window: logits from the embeddings
    windows = found.windows
    start, end = (t.numpy() for t in qa.logits(windows.input_ids, windows.attention_mask, windows.token_type_ids))
    np.testing.assert_allclose(found.answer_pass.start_logits, start, atol=1e-5)
    np.testing.assert_allclose(found.answer_pass.end_logits, end, atol=1e-5)
    ctx = found.context(qa)
    target, _ = ctx.targets_and_gradients(ctx.embeddings()[np.newaxis])
    assert target[0] == pytest.approx(start[0, ctx.target_start] + end[0, ctx.target_end], abs=1e-5)


@pytest.mark.parametrize("kind", by_kind(KINDS))
def test_every_method_explains_every_word(kind: str, engine_model: Callable[[str], Any]) -> None:
    from explain_core import explain
    from explain_core.engine.saliency import METHODS

    question, passage = EXPLAINED
    for method in METHODS:  # each on a fresh model, as `qa-explain --method` would run it
        exp = explain(question, passage, model=engine_model(kind), method=method)
        assert exp.answer == passage[exp.start:exp.end]
        weights = np.array([a.weight for a in exp.tokens + exp.words])
        assert np.isfinite(weights).all(), method
        assert np.abs([w.weight for w in exp.words]).max() == pytest.approx(1.0), method
        for segment, text in (("question", question), ("passage", passage)):
            words = [(w.start, w.end) for w in exp.words if w.segment == segment]
            assert words == [m.span() for m in _WORD.finditer(text)], (method, segment)
            tokens = [(t.start, t.end) for t in exp.tokens if t.segment == segment]
            assert all(any(s <= ts and te <= e for s, e in words) for ts, te in tokens), (method, segment)
            assert all(any(s <= ts and te <= e for ts, te in tokens) for s, e in words), (method, segment)


@pytest.mark.parametrize("kind", by_kind(KINDS))
def test_every_token_counts_for_the_word_it_starts_in(kind: str, engine_model: Callable[[str], Any]) -> None:
    """SentencePiece ("▁word") and GPT-2-style ("Ġword") pieces have offsets that begin on the
    space before their word; such a token counts for that word, not for none of them."""
    from explain_core.engine.words import attributions

    tokenizer = engine_model(kind).tokenizer
    question, passage = "Who  built\tit ?", "The lighthouse  was built\nby  Margaret Hale in 1810 ."
    question_first = tokenizer.padding_side == "right"
    pair = (question, passage) if question_first else (passage, question)
    enc = tokenizer(*pair).encodings[0]
    # Each real token's first non-space character, and the word (segment, start) it falls in.
    expected: dict[tuple[str, int], int] = {}
    for sid, (start, end) in zip(enc.sequence_ids, enc.offsets):
        if sid is None:
            continue
        segment = "question" if (sid == 0) == question_first else "passage"
        text = question if segment == "question" else passage
        first = next((i for i in range(start, end) if not text[i].isspace()), None)
        if first is not None:
            word = next(m for m in _WORD.finditer(text) if m.start() <= first < m.end())
            expected[(segment, word.start())] = expected.get((segment, word.start()), 0) + 1
    # All-ones token scores, signed: each word's weight is its number of tokens over the largest.
    tokens, words = attributions(np.ones(len(enc.ids)), enc, question_first, question, passage, signed=True)
    assert len(tokens) == sum(expected.values())
    assert all(t.text == t.text.strip() and t.text for t in tokens)
    peak = max(expected.values())
    assert {(w.segment, w.start): round(w.weight * peak) for w in words} == expected


# Tracing a gradient graph costs 2-16 s per architecture (TensorFlow converts its code), and every
# architecture's graph is the same engine function: these are the ones whose model code takes other
# paths in a graph (DeBERTa's relative positions, XLNet's two streams, Longformer's global attention)
# and BERT for the common case. Funnel, the one a graph cannot take, has its own test below.
TRACED_KINDS = ("bert", "deberta-v2", "xlnet", "longformer")


@pytest.mark.slow
@pytest.mark.parametrize("kind", by_kind(TRACED_KINDS))
def test_the_traced_gradient_equals_the_eager_one(kind: str, engine_model: Callable[[str], Any]) -> None:
    """A one-shot `qa-explain` runs its first calls eagerly; the worker (which traces its graphs
    before the first job) and `--jsonl` run traced graphs. The gradient is the same either way."""
    from explain_core.engine.locate import locate
    from explain_core.engine.saliency.base import AttributionContext
    from explain_core.settings import DecodeSettings

    qa = engine_model(kind)
    found = locate(qa, *EXPLAINED, DecodeSettings())
    ctx = AttributionContext.for_window(qa, found.windows, 0, found.best.token_start, found.best.token_end)
    rows = np.stack([ctx.embeddings(), 0.5 * ctx.embeddings()])  # the input and a point on the IG path
    eager = ctx.targets_and_gradients(rows)
    qa.gradient_at.trace()
    traced = ctx.targets_and_gradients(rows)
    assert qa.gradient_at.tracing_count() == 1
    for graph, want in zip(traced, eager):
        np.testing.assert_allclose(graph, want, atol=1e-4 * max(1.0, np.abs(want).max()))


@pytest.mark.slow  # three traces and two explanations: about 10 s
@pytest.mark.xdist_group("arch-funnel")
def test_funnel_gradients_run_eagerly_where_no_graph_can_take_them(
        engine_model: Callable[[str], Any], caplog: pytest.LogCaptureFixture) -> None:
    """Funnel's TF code branches in Python on the sequence length; in a graph of unknown length
    they become `tf.cond`s whose outputs differ in shape, and TensorFlow cannot differentiate
    them: the worker's warm-up (`trace`) failed with a shape error and a traceback, and so did
    integrated gradients and SmoothGrad once their calls went through the graph. Its gradient
    functions now run eagerly (one warning each); the forward graph is traced as for any model."""
    from explain_core import explain

    qa = engine_model("funnel")
    with caplog.at_level("WARNING", logger="explain_core.engine.model"):
        qa.trace()
    assert [f.tracing_count() for f in (qa.logits, qa.gradient_at, qa.answer_and_gradient)] == [1, 0, 0]
    warnings = [r.getMessage() for r in caplog.records if r.name == "explain_core.engine.model"]
    assert len(warnings) == 2 and all("runs eagerly" in w and "Incompatible shapes" in w for w in warnings)
    # Several windows: the traced forward graph finds the answer, the eager gradient explains it.
    ours, eager = (explain(*SEVERAL_WINDOWS[0], model=model, method="integrated_gradients")
                   for model in (qa, engine_model("funnel")))
    assert (ours.answer, ours.start, ours.score) == pytest.approx((eager.answer, eager.start, eager.score))
    np.testing.assert_allclose([w.weight for w in ours.words], [w.weight for w in eager.words], atol=1e-4)


# -- refused at load -------------------------------------------------------------------------------
# The refusal comes before the tokenizer and the weights are read, so a folder holding the
# configuration alone is refused exactly as a whole checkpoint of the architecture would be.
REFUSED_PASSAGE = "The lighthouse was built by Margaret Hale in 1810."


@pytest.fixture(params=["flaubert", "layoutlmv3", "xlm", "gpt2"])
def refused_checkpoint(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A checkpoint folder of an architecture the engine does not serve, and the reason it gives
    (gpt2: transformers has no TF question-answering class for it at all)."""
    from transformers import AutoConfig

    from explain_core.engine.model import UNSUPPORTED_ARCHITECTURES

    AutoConfig.for_model(request.param).save_pretrained(tmp_path)
    reason = UNSUPPORTED_ARCHITECTURES.get(request.param, "no TensorFlow question-answering model")
    return tmp_path, reason


def test_unsupported_architecture_is_refused_at_load_in_one_line(refused_checkpoint: tuple[Path, str]) -> None:
    from explain_core.engine.model import load_model
    from explain_core.errors import InputError

    path, reason = refused_checkpoint
    with pytest.raises(InputError) as refused:
        load_model(str(path))
    assert refused.value.code == "unsupported_model"
    assert refused.value.message.startswith(f"model '{path}' is not supported: ")
    assert reason in refused.value.message and "\n" not in refused.value.message


def test_qa_explain_refuses_it_in_one_line_with_exit_code_2(refused_checkpoint: tuple[Path, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from explain_core.cli import main

    path, reason = refused_checkpoint
    with pytest.raises(SystemExit) as exited:
        main(["--question", "Who built it?", "--passage", REFUSED_PASSAGE, "--model", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"qa-explain: error: model '{path}' is not supported: ") and reason in err
    assert "\n" not in err


def test_the_worker_answers_each_job_with_the_refusal(refused_checkpoint: tuple[Path, str]) -> None:
    from explain_core.queue import Job
    from explain_core.worker.answerer import Answerer, Ready

    path, reason = refused_checkpoint
    jobs = [Ready(f"1-{i}", Job(key=f"k{i}", question=q, passage=REFUSED_PASSAGE), REFUSED_PASSAGE)
            for i, q in enumerate(("Who built it?", "When?"))]
    results = Answerer(str(path)).answer(jobs)
    assert [(r.ok, r.key, r.error.code) for r in results] == [(False, "k0", "unsupported_model"),
                                                               (False, "k1", "unsupported_model")]
    assert all(reason in r.error.message for r in results)


@pytest.mark.xdist_group("arch-roformer")
def test_a_tokenizer_library_that_is_missing_is_one_line(checkpoint: Callable[[str], Path], tmp_path: Path) -> None:
    """RoFormer's own tokenizer segments Chinese with rjieba; without it, transformers raises
    ImportError while loading the tokenizer: one line, not a traceback."""
    import importlib.util
    import json
    import shutil

    from explain_core.engine.model import load_model
    from explain_core.errors import InputError

    if importlib.util.find_spec("rjieba") is not None:
        pytest.skip("rjieba is installed: RoFormer's tokenizer loads")
    folder = shutil.copytree(checkpoint("roformer"), tmp_path / "roformer")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps(config | {"tokenizer_class": "RoFormerTokenizer"}))
    with pytest.raises(InputError) as refused:
        load_model(str(folder))
    assert refused.value.code == "unknown_model" and "rjieba" in refused.value.message
    assert "\n" not in refused.value.message
