"""Answer and explain: windows -> one graph pass -> pipeline decoding -> saliency -> words.

The common case (a passage that fits one window) costs a single forward+backward pass:
the graph picks the span, the decoder confirms it, and the gradient is already there.
Longer passages run a forward pass over all windows, then a gradient on the answer's
window only. `explain_batch` puts the single-window questions of a batch into one pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from explain_core.decode import Candidate, decode
from explain_core.faithfulness import measure as measure_faithfulness
from explain_core.errors import InputError
from explain_core.model import QAModel, load_model
from explain_core.result import Explanation, Span
from explain_core.saliency import AttributionContext, get_method
from explain_core.settings import DecodeSettings, default_model
from explain_core.validation import validate
from explain_core.windows import Windows, make_windows
from explain_core.words import attributions, sequence_ids


@dataclass
class _Pass:
    """What the answer pass produced for one question: logits of every window, and the
    span + gradient the graph chose for a single-window question (None otherwise)."""

    windows: Windows
    start_logits: np.ndarray
    end_logits: np.ndarray
    graph_span: tuple[int, int] | None = None
    gradient: np.ndarray | None = None


def _resolve(model: str | QAModel | None) -> QAModel:
    return model if isinstance(model, QAModel) else load_model(model or default_model())


def _answer_passes(qa: QAModel, all_windows: list[Windows], settings: DecodeSettings) -> list[_Pass]:
    """Run the model once over the windows of several questions.

    Single-window questions go together through the fused answer+gradient graph; the
    windows of longer passages go through the forward-only graph (their answer window
    is not known yet, so a gradient for every window would be wasted).
    """
    passes: list[_Pass | None] = [None] * len(all_windows)
    single = [i for i, w in enumerate(all_windows) if len(w) == 1]
    if single:
        batch = _stack([all_windows[i] for i in single])
        start, end, starts, ends, grads = qa.answer_and_gradient(
            batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.allowed,
            np.int32(settings.max_answer_len), np.bool_(settings.handle_impossible_answer))
        start, end, grads = start.numpy(), end.numpy(), grads.numpy()
        for row, i in enumerate(single):
            n = all_windows[i].input_ids.shape[1]
            passes[i] = _Pass(all_windows[i], start[row:row + 1, :n], end[row:row + 1, :n],
                              (int(starts[row]), int(ends[row])), grads[row, :n])
    multi = [i for i, w in enumerate(all_windows) if len(w) > 1]
    if multi:
        batch = _stack([all_windows[i] for i in multi])
        start, end = (t.numpy() for t in qa.logits(batch.input_ids, batch.attention_mask, batch.token_type_ids))
        row = 0
        for i in multi:
            count, n = all_windows[i].input_ids.shape
            passes[i] = _Pass(all_windows[i], start[row:row + count, :n], end[row:row + count, :n])
            row += count
    return passes  # type: ignore[return-value]


def _stack(parts: list[Windows]) -> Windows:
    """Concatenate windows of several questions into one right-padded batch."""
    width = max(w.input_ids.shape[1] for w in parts)

    def pad(name: str, fill: int) -> np.ndarray:
        return np.concatenate([np.pad(getattr(w, name), ((0, 0), (0, width - getattr(w, name).shape[1])),
                                      constant_values=fill) for w in parts])

    return Windows(pad("input_ids", 0), pad("attention_mask", 0), pad("token_type_ids", 0), pad("p_mask", 1),
                   [e for w in parts for e in w.encodings], "", False, parts[0].question_first)


def _explain_one(qa: QAModel, question: str, passage: str, answer_pass: _Pass, method_name: str,
                 settings: DecodeSettings, timings: dict[str, float], with_faithfulness: bool) -> Explanation:
    windows = answer_pass.windows
    t0 = time.perf_counter()
    ranked = decode(windows, passage, answer_pass.start_logits, answer_pass.end_logits, settings)
    if not ranked:  # every window's best span fell on tokens the pipeline rejects
        ranked = [Candidate("", 0, 0, 0.0, 0, 0, 0)]
    best = ranked[0]
    timings["decode"] = (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    method = get_method(method_name)
    w = best.window
    ctx = AttributionContext.for_window(qa, windows, w, best.token_start, best.token_end)
    if answer_pass.graph_span == (best.token_start, best.token_end):
        ctx.gradient = answer_pass.gradient
    raw = method.attribute(ctx)
    tokens, words = attributions(raw, windows.encodings[w], windows.question_first, windows.question, passage,
                                 method.signed)
    timings["explain"] = (time.perf_counter() - t0) * 1000
    faithful = measure_faithfulness(ctx, raw) if with_faithfulness else None
    if faithful is not None:
        timings["faithfulness"] = faithful.extra_ms

    passage_offsets = np.array(windows.encodings[w].offsets).reshape(-1, 2)[
        sequence_ids(windows.encodings[w]) == windows.passage_segment()]
    rejected = next((c for c in ranked if not c.is_null), None) if best.is_null else None
    return Explanation(
        question=question,
        passage=passage,
        answer=best.answer,
        # The pipeline adds up the probabilities of one answer text found in overlapping
        # windows, which can pass 1; a confidence shown to people stays a probability.
        score=min(1.0, float(best.score)),
        start=best.start,
        end=best.end,
        no_answer=best.is_null,
        model=qa.name,
        method=method.name,
        signed=method.signed,
        target="null" if best.is_null else "span",
        tokens=tokens,
        words=words,
        windows=len(windows),
        window_start=int(passage_offsets[0, 0]) if len(passage_offsets) else 0,
        window_end=int(passage_offsets[-1, 1]) if len(passage_offsets) else 0,
        best_rejected=Span(rejected.answer, rejected.start, rejected.end, float(rejected.score)) if rejected else None,
        question_truncated=windows.question_truncated,
        diagnostics=dict(ctx.diagnostics),
        faithfulness=faithful,
        timings_ms={k: round(v, 2) for k, v in timings.items()},
    )


def explain_batch(items: list[tuple[str, str]], *, model: str | QAModel | None = None, method: str = "vanilla",
                  settings: DecodeSettings | None = None, faithfulness: bool = False) -> list[Explanation | InputError]:
    """Answer and explain several questions with shared forward passes (the worker's path).

    A bad item yields its `InputError` in place, so one user's mistake never fails the batch.
    """
    settings = settings or DecodeSettings()
    get_method(method)  # an unknown method is everybody's error: raise before any work
    qa = _resolve(model)
    started = time.perf_counter()
    results: list[Explanation | InputError | None] = [None] * len(items)
    good: list[int] = []
    all_windows: list[Windows] = []
    for i, (question, passage) in enumerate(items):
        try:
            validate(question, passage)
            all_windows.append(make_windows(qa.tokenizer, question, passage, settings))
            good.append(i)
        except InputError as exc:
            results[i] = exc
    tokenize_ms = (time.perf_counter() - started) * 1000
    t0 = time.perf_counter()
    passes = _answer_passes(qa, all_windows, settings) if all_windows else []
    forward_ms = (time.perf_counter() - t0) * 1000
    for i, answer_pass in zip(good, passes):
        timings = {"tokenize": tokenize_ms, "forward": forward_ms}
        t0 = time.perf_counter()
        question, passage = items[i]
        results[i] = _explain_one(qa, question, passage, answer_pass, method, settings, timings, faithfulness)
        results[i].timings_ms["total"] = round(tokenize_ms + forward_ms + (time.perf_counter() - t0) * 1000, 2)
    return results  # type: ignore[return-value]


def explain(question: str, passage: str, *, model: str | QAModel | None = None, method: str = "vanilla",
            settings: DecodeSettings | None = None, faithfulness: bool = False) -> Explanation:
    """Answer one question about a passage and explain the answer shown.

    Raises `InputError` for input the user must fix (empty text, too long, unknown method
    or model); the answer equals the transformers question-answering pipeline's.
    `faithfulness=True` adds comprehensiveness/sufficiency (a few masked forward passes).
    """
    result = explain_batch([(question, passage)], model=model, method=method, settings=settings,
                           faithfulness=faithfulness)[0]
    if isinstance(result, InputError):
        raise result
    return result
