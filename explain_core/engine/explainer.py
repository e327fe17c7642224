"""Answer and explain: locate the answer (explain_core.engine.locate), then saliency -> words.

`explain_batch` puts the questions of a batch into shared forward passes (the worker's path);
`explain` is one question.
"""
from __future__ import annotations

import time

import numpy as np

from explain_core import defaults
from explain_core.engine.faithfulness import measure as measure_faithfulness
from explain_core.engine.locate import Located, WindowsRead, locate_all
from explain_core.engine.model import QAModel, load_model
from explain_core.engine.saliency import SaliencyMethod, resolve_method
from explain_core.engine.windows import Windows, make_windows
from explain_core.engine.words import attributions, sequence_ids
from explain_core.errors import InputError
from explain_core.explanation import Explanation, Span
from explain_core.settings import DecodeSettings, default_model
from explain_core.validation import validate


def _resolve(model: str | QAModel | None) -> QAModel:
    return model if isinstance(model, QAModel) else load_model(model or default_model())


def _explain_one(qa: QAModel, question: str, passage: str, located: Located, method: SaliencyMethod,
                 timings: dict[str, float], with_faithfulness: bool, settings: DecodeSettings) -> Explanation:
    windows, ranked, best = located.windows, located.ranked, located.best
    timings["decode"] = located.decode_ms

    t0 = time.perf_counter()
    w = best.window
    ctx = located.context(qa)
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
        alternatives=[Span(c.answer, c.start, c.end, min(1.0, float(c.score)))
                      for c in located.top(passage, settings, defaults.ALTERNATIVES)],
        question_truncated=windows.question_truncated,
        diagnostics=dict(ctx.diagnostics),
        faithfulness=faithful,
        timings_ms={k: round(v, 2) for k, v in timings.items()},
    )


def explain_batch(items: list[tuple[str, str]], *, model: str | QAModel | None = None,
                  method: str | SaliencyMethod = defaults.METHOD,
                  settings: DecodeSettings | None = None, faithfulness: bool = False,
                  progress: WindowsRead | None = None) -> list[Explanation | InputError]:
    """Answer and explain several questions with shared forward passes (the worker's path).

    A bad item yields its `InputError` in place, so one user's mistake never fails the batch.
    `progress(item, windows read, windows)` follows the reading of long passages (index into `items`).
    """
    settings = settings or DecodeSettings()
    saliency = resolve_method(method)  # an unknown method is everybody's error: raise before any work
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
    def relay(j: int, done: int, total: int) -> None:
        if progress is not None:
            progress(good[j], done, total)

    located = locate_all(qa, all_windows, [items[i][1] for i in good], settings, relay) if all_windows else []
    forward_ms = (time.perf_counter() - t0) * 1000 - sum(found.decode_ms for found in located)
    for i, found in zip(good, located):
        timings = {"tokenize": tokenize_ms, "forward": forward_ms}
        t0 = time.perf_counter()
        question, passage = items[i]
        explanation = _explain_one(qa, question, passage, found, saliency, timings, faithfulness, settings)
        explanation.timings_ms["total"] = round(
            tokenize_ms + forward_ms + found.decode_ms + (time.perf_counter() - t0) * 1000, 2)
        results[i] = explanation
    return results  # type: ignore[return-value]


def explain(question: str, passage: str, *, model: str | QAModel | None = None,
            method: str | SaliencyMethod = defaults.METHOD,
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
