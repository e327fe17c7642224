"""The typed explanation of one answer (what the engine returns), and its JSON form.

Kept free of TensorFlow so that the renderer, the summary and the CLI can all read it.
The JSON shape is the contract in DESIGN.md (`qa-explain --json`); other tools parse it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from explain_core.codec import from_object, to_object

Segment = Literal["question", "passage"]


@dataclass(frozen=True)
class Attribution:
    """Weight of one token or word; offsets point into the question or the passage (see `segment`).

    `weight` is normalised: in [0, 1] for unsigned methods, in [-1, 1] for signed ones,
    so that a front end can colour it without knowing the method.
    """

    text: str
    start: int
    end: int
    weight: float
    segment: Segment


@dataclass(frozen=True)
class Span:
    """A candidate answer: character offsets into the passage and its pipeline score."""

    answer: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Faithfulness:
    """How much the answer depends on the words the explanation ranks highest.

    comprehensiveness: mean drop of P(start)*P(end) when the top-k% passage tokens are masked
    (higher = the explanation found what the model used); sufficiency: mean drop when only the
    top-k% are kept (lower = better). `original` is P(start)*P(end) of the span in its window,
    unmasked; `curve` holds, per fraction k, the probability with the top k hidden / kept only.
    """

    comprehensiveness: float
    sufficiency: float
    original: float
    curve: list[dict[str, float]]
    sentence: str
    extra_ms: float


def evidence(words: list[Attribution], answer: tuple[int, int] | None) -> list[Attribution]:
    """`words` without those overlapping the passage span `answer` (None: no answer), largest
    |weight| first: the ranking that the reply's top words, the picture's bars, `--json`'s
    `evidence` and the evaluations share.

    Why leave the span out: the explained quantity is the span's own logits, so its words
    always weigh much (integrated gradients put the answer word in its top 3 for 99% of the
    known-rationale questions) and telling a person that the answer mattered to the answer
    teaches nothing; the picture still shades and boxes it. Words of weight 0 (or not
    finite: a broken method) are no evidence. Ties keep text order, question first.
    """
    order = {"question": 0, "passage": 1}
    ranked = [w for w in words if math.isfinite(w.weight) and w.weight != 0.0
              and not (answer is not None and w.segment == "passage" and w.start < answer[1] and w.end > answer[0])]
    return sorted(ranked, key=lambda w: (-abs(w.weight), order.get(w.segment, 2), w.start))


@dataclass(frozen=True)
class Explanation:
    """One answered and explained question.

    `target` says which quantity was explained: "span" (start_logit[s] + end_logit[e] of the
    shown answer) or "null" (start_logit[0] + end_logit[0], the no-answer score).
    Only the window that holds the answer is explained; `window_start:window_end` is the
    passage text it covers, `windows` how many windows the whole passage took.
    """

    question: str
    passage: str
    answer: str
    score: float
    start: int
    end: int
    no_answer: bool
    model: str
    method: str
    signed: bool
    target: Literal["span", "null"]
    tokens: list[Attribution]
    words: list[Attribution]
    windows: int
    window_start: int
    window_end: int
    best_rejected: Span | None = None
    # The pipeline's answers with top_k=ALTERNATIVES (the null answer included when it ranks),
    # so a person who doubts the answer sees what came close.
    alternatives: list[Span] = field(default_factory=list)
    question_truncated: bool = False
    diagnostics: dict[str, float] = field(default_factory=dict)
    faithfulness: Faithfulness | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def evidence(self) -> list[Attribution]:
        """The words that drove the answer other than the answer itself (see `evidence`)."""
        return evidence(self.words, None if self.no_answer else (self.start, self.end))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `qa-explain --json`: the fields, plus `evidence` (see `evidence`),
        derived from `words` and so ignored when read back."""
        return to_object(self) | {"evidence": to_object(self.evidence())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """Inverse of `to_dict`, for consumers that read the JSON back from a file or a pipe."""
        return from_object(cls, data, "explanation")
