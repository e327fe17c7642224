"""Token scores -> token and word attributions with character offsets.

Words are whitespace-separated runs of the original text, found through each token's
character offsets, so the same code serves WordPiece, byte-level BPE and SentencePiece
(their own notions of "word" differ; what a reader sees as a word does not). A token belongs
to the word of its first non-space character: SentencePiece ("▁word") and GPT-2-style
("Ġword") pieces carry the space before the word in their offsets.
"""
from __future__ import annotations

import re

import numpy as np
from tokenizers import Encoding

from explain_core.explanation import Attribution, Segment

_WORD = re.compile(r"\S+")
SEGMENTS: tuple[Segment, Segment] = ("question", "passage")


def sequence_ids(encoding: Encoding) -> np.ndarray:
    """The tokenizer's sequence index per token as floats, NaN for special tokens."""
    return np.array(encoding.sequence_ids, dtype=np.float64)


def _normalise(values: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return values / peak if peak > 0 else np.zeros_like(values)


def _trimmed(offsets: np.ndarray, segment: np.ndarray, real: np.ndarray, texts: tuple[str, str]) -> np.ndarray:
    """Token offsets without the whitespace at either end (a token of whitespace only becomes
    empty); only the tokens that have any (one character is checked first) are sliced."""
    trimmed = offsets.copy()
    for i, ((start, end), seg, is_real) in enumerate(zip(offsets.tolist(), segment.tolist(), real.tolist())):
        text = texts[seg]
        if is_real and start < end and (text[start].isspace() or text[end - 1].isspace()):
            piece = text[start:end]
            start += len(piece) - len(piece.lstrip())
            trimmed[i] = start, max(start, end - (len(piece) - len(piece.rstrip())))
    return trimmed


def attributions(raw: np.ndarray, encoding: Encoding, question_first: bool, question: str, passage: str,
                 signed: bool) -> tuple[list[Attribution], list[Attribution]]:
    """Normalised token and word attributions for the tokens of one window.

    Weights are divided by the largest magnitude among question and passage tokens (the
    seed divides by the maximum; special tokens are left out so [CLS]/[SEP] never set the
    scale). Words aggregate by sum when signed and by L2 norm otherwise.
    """
    seq = sequence_ids(encoding)
    texts = (question, passage)
    segment = np.where(seq == (0 if question_first else 1), 0, 1)  # index into texts / SEGMENTS
    offsets = _trimmed(np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2), segment, ~np.isnan(seq), texts)
    word = np.full(len(offsets), -1)
    spans: list[tuple[int, int, int]] = []  # (segment, start, end) of each word
    for seg in (0, 1):
        in_segment = np.flatnonzero(~np.isnan(seq) & (segment == seg))
        if not in_segment.size:
            continue
        lo, hi = int(offsets[in_segment, 0].min()), int(offsets[in_segment, 1].max())
        seg_spans = [m.span() for m in _WORD.finditer(texts[seg], lo, hi)]
        if not seg_spans:
            continue
        starts, ends = np.array(seg_spans).T
        index = np.searchsorted(starts, offsets[in_segment, 0], side="right") - 1
        # Tokens of pure whitespace (byte-level BPE has them for newlines) belong to no word.
        inside = (index >= 0) & (offsets[in_segment, 0] < ends[np.maximum(index, 0)])
        word[in_segment[inside]] = index[inside] + len(spans)
        spans.extend((seg, int(s), int(e)) for s, e in seg_spans)
    keep = (word >= 0) & (offsets[:, 1] > offsets[:, 0])
    values = raw.astype(np.float64)[keep]
    tokens = [
        Attribution(texts[seg][s:e], s, e, w, SEGMENTS[seg])
        for (s, e), w, seg in zip(offsets[keep].tolist(), _normalise(values).tolist(), segment[keep].tolist())
    ]
    if signed:
        totals = np.bincount(word[keep], weights=values, minlength=len(spans))
    else:
        totals = np.sqrt(np.bincount(word[keep], weights=values ** 2, minlength=len(spans)))
    words = [Attribution(texts[seg][s:e], s, e, float(w), SEGMENTS[seg])
             for (seg, s, e), w in zip(spans, _normalise(totals).tolist())]
    return tokens, words
