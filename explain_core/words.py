"""Token scores -> token and word attributions with character offsets.

Words are whitespace-separated runs of the original text, found through each token's
character offsets, so the same code serves WordPiece, byte-level BPE and SentencePiece
(their own notions of "word" differ; what a reader sees as a word does not).
"""
from __future__ import annotations

import re

import numpy as np
from tokenizers import Encoding

from explain_core.result import Attribution, Segment

_WORD = re.compile(r"\S+")


def _normalise(values: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def token_segments(encoding: Encoding, question_first: bool) -> list[Segment | None]:
    """Segment of each token of a window; None for special tokens and padding."""
    names: dict[int | None, Segment | None] = (
        {0: "question", 1: "passage", None: None} if question_first else {0: "passage", 1: "question", None: None}
    )
    return [names[sid] for sid in encoding.sequence_ids]


def attributions(raw: np.ndarray, encoding: Encoding, question_first: bool, question: str, passage: str,
                 signed: bool) -> tuple[list[Attribution], list[Attribution]]:
    """Normalised token and word attributions for the tokens of one window.

    Weights are divided by the largest magnitude among question and passage tokens (the
    seed divides by the maximum; special tokens are left out so [CLS]/[SEP] never set the
    scale). Words aggregate by sum when signed and by L2 norm otherwise.
    """
    segments = token_segments(encoding, question_first)
    texts = {"question": question, "passage": passage}
    keep = [i for i, seg in enumerate(segments) if seg is not None and encoding.offsets[i][1] > encoding.offsets[i][0]]
    values = raw[keep].astype(np.float64)
    tokens = [
        Attribution(texts[segments[i]][encoding.offsets[i][0]:encoding.offsets[i][1]],
                    encoding.offsets[i][0], encoding.offsets[i][1], float(w), segments[i])
        for i, w in zip(keep, _normalise(values))
    ]
    words: list[Attribution] = []
    for segment in ("question", "passage"):
        seg_tokens = [(t, v) for t, v in zip(tokens, values) if t.segment == segment]
        if not seg_tokens:
            continue
        text = texts[segment]
        lo, hi = seg_tokens[0][0].start, seg_tokens[-1][0].end
        spans = [m.span() for m in _WORD.finditer(text, lo, hi)]
        starts = np.array([s for s, _ in spans])
        sums = np.zeros(len(spans))
        for token, value in seg_tokens:
            index = int(np.searchsorted(starts, token.start, side="right")) - 1
            sums[index] += value if signed else value * value
        scores = sums if signed else np.sqrt(sums)
        words.extend(Attribution(text[s:e], s, e, float(score), segment)
                     for (s, e), score in zip(spans, scores))
    peak = max((abs(w.weight) for w in words), default=0.0)
    if peak > 0:
        words = [Attribution(w.text, w.start, w.end, w.weight / peak, w.segment) for w in words]
    return tokens, words
