"""Token scores -> token and word attributions with character offsets.

Words are whitespace-separated runs of the original text, found through each token's
character offsets, so the same code serves WordPiece, byte-level BPE and SentencePiece
(their own notions of "word" differ; what a reader sees as a word does not).
"""
from __future__ import annotations

import re

import numpy as np
from tokenizers import Encoding

from explain_core.result import Attribution

_WORD = re.compile(r"\S+")
SEGMENTS = ("question", "passage")


def sequence_ids(encoding: Encoding) -> np.ndarray:
    """The tokenizer's sequence index per token as floats, NaN for special tokens."""
    return np.array(encoding.sequence_ids, dtype=np.float64)


def _normalise(values: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def attributions(raw: np.ndarray, encoding: Encoding, question_first: bool, question: str, passage: str,
                 signed: bool) -> tuple[list[Attribution], list[Attribution]]:
    """Normalised token and word attributions for the tokens of one window.

    Weights are divided by the largest magnitude among question and passage tokens (the
    seed divides by the maximum; special tokens are left out so [CLS]/[SEP] never set the
    scale). Words aggregate by sum when signed and by L2 norm otherwise.
    """
    offsets = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    seq = sequence_ids(encoding)
    question_seq = 0 if question_first else 1
    keep = ~np.isnan(seq) & (offsets[:, 1] > offsets[:, 0])
    values = raw.astype(np.float64)[keep]
    token_weights = _normalise(values)
    is_question = seq[keep] == question_seq
    kept_offsets = offsets[keep]
    texts = (question, passage)

    tokens = [
        Attribution(texts[seg][s:e], int(s), int(e), float(w), SEGMENTS[seg])
        for (s, e), w, seg in zip(kept_offsets.tolist(), token_weights.tolist(), (~is_question).astype(int).tolist())
    ]
    spans: list[tuple[int, int, int]] = []  # (segment, start, end) of each word
    scores: list[float] = []
    for seg, in_segment in enumerate((is_question, ~is_question)):
        if not in_segment.any():
            continue
        seg_offsets, seg_values = kept_offsets[in_segment], values[in_segment]
        seg_spans = [m.span() for m in _WORD.finditer(texts[seg], int(seg_offsets[0, 0]), int(seg_offsets[-1, 1]))]
        word_of_token = np.searchsorted([start for start, _ in seg_spans], seg_offsets[:, 0], side="right") - 1
        if signed:
            totals = np.bincount(word_of_token, weights=seg_values, minlength=len(seg_spans))
        else:
            totals = np.sqrt(np.bincount(word_of_token, weights=seg_values ** 2, minlength=len(seg_spans)))
        spans.extend((seg, start, end) for start, end in seg_spans)
        scores.extend(totals.tolist())
    words = [Attribution(texts[seg][s:e], s, e, float(w), SEGMENTS[seg])
             for (seg, s, e), w in zip(spans, _normalise(np.array(scores)).tolist())]
    return tokens, words
