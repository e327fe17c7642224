"""The glanceable answer summary: what a front end shows next to the picture.

Why a separate, plain structure: the bot turns it into Block Kit without knowing anything
about models, gradients or PIL, and it travels through Redis as JSON. So it holds only
ready-to-show values (the answer's sentence with the span located, the top words, a short
model name, a readable method name), and its module imports neither TensorFlow nor PIL.
"""
from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from explain_core.codec import from_object, named_tuple, to_object
from explain_core.explanation import Explanation, Span
from explain_core.present.excerpts import clean, excerpt

METHOD_LABELS = {
    "vanilla": "vanilla gradient",
    "grad_x_input": "gradient × input",
    "integrated_gradients": "integrated gradients",
    "smoothgrad": "SmoothGrad",
}
SENTENCE_MAX_CHARS = 300  # a quote, not a page: Slack shows it in one section block
SENTENCE_MAX_WORDS = 60
ELLIPSIS = "…"


@named_tuple
class TopWord(NamedTuple):
    """A word ranked by the size of its weight; `segment` is "question" or "passage"."""

    text: str
    weight: float
    segment: str


@named_tuple
class RejectedSpan(NamedTuple):
    """For a no-answer result: the best span the model turned down, and its score."""

    answer: str
    score: float


@named_tuple
class Alternative(NamedTuple):
    """One of the pipeline's top answers, with the sentence it sits in (`sentence[answer_start:
    answer_end]` is the answer); the no-answer candidate has an empty answer and sentence."""

    answer: str
    score: float
    sentence: str
    answer_start: int
    answer_end: int


@dataclass(frozen=True)
class AnswerSummary:
    """One answer, ready to show.

    `sentence[answer_start:answer_end]` is the answer inside the sentence that holds it
    (whitespace collapsed, cut with "…" around the answer if the sentence is very long);
    empty for a no-answer result. `confidence` is the pipeline score in 0..1 (for a
    no-answer result, the score of "no answer"). `latency_ms` is the engine's total time,
    None when it was not measured. `faithfulness` is a plain sentence, None when not run.
    `alternatives` are the pipeline's top answers (`defaults.ALTERNATIVES`), the shown one included.
    """

    answer: str
    confidence: float
    no_answer: bool
    sentence: str
    answer_start: int
    answer_end: int
    top_words: list[TopWord]
    model: str
    model_label: str
    method: str
    method_label: str
    latency_ms: float | None
    windows: int
    best_rejected: RejectedSpan | None = None
    faithfulness: str | None = None
    alternatives: list[Alternative] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (what travels in a `JobResult`)."""
        return to_object(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerSummary:
        """Inverse of `to_dict`; unknown keys are ignored so an older reader can read a newer
        writer's summaries (the bot and the worker are deployed separately)."""
        return from_object(cls, data, "answer summary")


def method_label(method: str) -> str:
    """Readable name of a saliency method ("grad_x_input" -> "gradient × input")."""
    return METHOD_LABELS.get(method, method)


def model_label(model: str) -> str:
    """Short model name for display: the folder name of a local path, a hub name as is.

    A local path would show a machine's directory layout in Slack and make the title long.
    """
    trimmed = model.rstrip("/\\")
    if trimmed.startswith(("/", ".", "~")) or "\\" in trimmed or os.path.isdir(model):
        return trimmed.replace("\\", "/").rsplit("/", 1)[-1] or model
    return trimmed or model


def finite_weight(weight: float) -> float:
    """A weight safe to rank and draw: NaN and infinities (a broken method) count as 0."""
    return weight if math.isfinite(weight) else 0.0


def display_word(text: str) -> str:
    """A word as a list shows it: without the punctuation around it ("(Norman:" -> "Norman"),
    unless it is nothing but punctuation."""
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start])[0] in "PZ":
        start += 1
    while end > start and unicodedata.category(text[end - 1])[0] in "PZ":
        end -= 1
    return text[start:end] if end > start else text.strip()


def top_words(exp: Explanation, k: int = 5) -> list[TopWord]:
    """The `k` strongest words of the evidence (`Explanation.evidence`: the answer span's own
    words left out), question and passage together.

    A word that occurs several times ("Normandy" and "Normandy,") is listed once, with its
    strongest weight: a list like "Normandy, Normandy, France" reads as a bug.
    """
    seen: set[tuple[str, str]] = set()
    result: list[TopWord] = []
    for word in exp.evidence():
        text = display_word(clean(word.text))
        if not text:  # zero-width characters only: nothing to show
            continue
        key = (text.casefold(), word.segment)
        if key in seen:
            continue
        seen.add(key)
        result.append(TopWord(text, round(float(word.weight), 4), word.segment))
        if len(result) == k:
            break
    return result


def _collapse(text: str) -> str:
    return " ".join(text.split())


def answer_sentence(passage: str, start: int, end: int) -> tuple[str, int, int]:
    """The sentence holding `passage[start:end]`, and the answer's offsets inside it."""
    part = excerpt(passage, start, end, max_words=SENTENCE_MAX_WORDS,
                   max_chars=SENTENCE_MAX_CHARS, grow=False)
    before = _collapse(passage[part.start:start])
    answer = _collapse(passage[start:end])
    after = _collapse(passage[end:part.end])
    prefix = ELLIPSIS if part.start > part.sentence_start else ""
    suffix = ELLIPSIS if part.end < part.sentence_end else ""
    # Collapsing removed the spaces at the joins; put one back where the passage had one.
    if before and passage[start - 1:start].isspace():
        before += " "
    if after and passage[end:end + 1].isspace():
        after = " " + after
    head = prefix + before
    return head + answer + after + suffix, len(head), len(head) + len(answer)


def _alternative(passage: str, span: Span) -> Alternative:
    if not span.answer:
        return Alternative("", finite_weight(span.score), "", 0, 0)
    sentence, start, end = answer_sentence(passage, span.start, span.end)
    return Alternative(span.answer, finite_weight(span.score), sentence, start, end)


def summarize(exp: Explanation, *, k: int = 5) -> AnswerSummary:
    """The summary of one explained answer (see `AnswerSummary`)."""
    if exp.no_answer:
        sentence, answer_start, answer_end = "", 0, 0
    else:
        sentence, answer_start, answer_end = answer_sentence(exp.passage, exp.start, exp.end)
    rejected = None
    if exp.no_answer and exp.best_rejected is not None:
        rejected = RejectedSpan(exp.best_rejected.answer, finite_weight(float(exp.best_rejected.score)))
    total = exp.timings_ms.get("total")
    return AnswerSummary(
        answer="" if exp.no_answer else exp.answer,
        confidence=finite_weight(float(exp.score)),  # JSON has no NaN
        no_answer=exp.no_answer,
        sentence=sentence,
        answer_start=answer_start,
        answer_end=answer_end,
        top_words=top_words(exp, k),
        model=exp.model,
        model_label=model_label(exp.model),
        method=exp.method,
        method_label=method_label(exp.method),
        latency_ms=None if total is None else float(total),
        windows=exp.windows,
        best_rejected=rejected,
        faithfulness=exp.faithfulness.sentence if exp.faithfulness else None,
        alternatives=[_alternative(exp.passage, span) for span in exp.alternatives],
    )
