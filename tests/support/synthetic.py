"""Synthetic explanations for the picture and summary tests: no model needed.

Why: the renderer and the summary only read an `Explanation`; building one by hand lets the
tests place the answer anywhere, use any script and any weights, and run in milliseconds.
"""
from __future__ import annotations

import random
import re

from explain_core.explanation import Attribution, Explanation, Span

_WORD = re.compile(r"\w+|[^\w\s]+")


def words_of(text: str, segment: str, weights: random.Random, signed: bool,
             hot: tuple[int, int] | None = None) -> list[Attribution]:
    """Tokenizer-like words (runs of letters/digits, runs of punctuation) with made-up weights;
    words inside `hot` get weight 1 so a test knows what must rank first."""
    result = []
    for match in _WORD.finditer(text):
        weight = weights.uniform(-1.0, 1.0) if signed else weights.random() ** 2
        if hot is not None and hot[0] <= match.start() and match.end() <= hot[1]:
            weight = 1.0
        result.append(Attribution(match.group(), match.start(), match.end(), round(weight, 4),
                                  segment))  # type: ignore[arg-type]
    return result


def make_explanation(question: str, passage: str, start: int = 0, end: int = 0, *,
                     no_answer: bool = False, signed: bool = False, seed: int = 0,
                     method: str | None = None, words: list[Attribution] | None = None,
                     best_rejected: Span | None = None, score: float = 0.87,
                     windows: int = 1, timings_ms: dict[str, float] | None = None) -> Explanation:
    """An `Explanation` of `passage[start:end]` (or of no answer) with made-up weights.

    Passage words inside the answer (or the best rejected span) weigh 1; `words` replaces
    all generated words (e.g. [] for an explanation without weights).
    """
    rng = random.Random(seed)
    hot = (best_rejected.start, best_rejected.end) if no_answer and best_rejected else (start, end)
    if words is None:
        words = words_of(question, "question", rng, signed) + \
            words_of(passage, "passage", rng, signed, hot)
    return Explanation(
        question=question, passage=passage,
        answer="" if no_answer else passage[start:end], score=score,
        start=0 if no_answer else start, end=0 if no_answer else end, no_answer=no_answer,
        model="/models/test-qa-model", method=method or ("grad_x_input" if signed else "vanilla"),
        signed=signed, target="null" if no_answer else "span",
        tokens=list(words), words=list(words), windows=windows,
        window_start=0, window_end=len(passage), best_rejected=best_rejected,
        timings_ms=timings_ms if timings_ms is not None else {"total": 123.4},
    )
