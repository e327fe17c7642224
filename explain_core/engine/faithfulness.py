"""Does the explanation point at what the model used? Comprehensiveness and sufficiency for QA.

ERASER's metrics (DeYoung et al. 2020) adapted to spans: the quantity is P(start)*P(end)
of the explained span in its window (the pipeline's softmax over allowed tokens), and
tokens are masked, not deleted, so positions and the span's indices stay valid. The span's
own tokens are never masked, in either metric: they are the answer, not the evidence for it
(hiding the answer trivially kills its probability, which would reward a map that only
points at the answer). All masked variants of a window go through the model in as few passes as the memory
budget allows.
"""
from __future__ import annotations

import math
import time

import numpy as np

from explain_core.engine.saliency.base import AttributionContext
from explain_core.explanation import Faithfulness

FRACTIONS = (0.05, 0.10, 0.20)
SENTENCE_FRACTION = 0.10


def _mask_id(ctx: AttributionContext) -> int:
    tok = ctx.model.tokenizer
    for candidate in (tok.mask_token_id, tok.unk_token_id, tok.pad_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def span_probabilities(ctx: AttributionContext, input_ids: np.ndarray) -> np.ndarray:
    """P(start = s) * P(end = e) of the context's target span for each row of `input_ids`."""
    step = ctx.rows_per_pass(backward=False)
    starts, ends = [], []
    for first in range(0, input_ids.shape[0], step):
        part = input_ids[first:first + step].astype(np.int32)
        start, end = ctx.model.logits(part, np.repeat(ctx.attention_mask, len(part), axis=0),
                                      np.repeat(ctx.token_type_ids, len(part), axis=0))
        starts.append(start.numpy())
        ends.append(end.numpy())
    return _span_probability(ctx, np.concatenate(starts), np.concatenate(ends))


def _span_probability(ctx: AttributionContext, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The target span's probability for rows of start and end logits ([rows, length] each):
    the pipeline's softmax over the allowed tokens."""
    allowed = ctx.allowed[np.newaxis, :] > 0

    def softmax(logits: np.ndarray) -> np.ndarray:
        masked = np.where(allowed, logits.astype(np.float64), -10000.0)
        exp = np.exp(masked - masked.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    return softmax(starts)[:, ctx.target_start] * softmax(ends)[:, ctx.target_end]


def masked_inputs(ctx: AttributionContext, order: np.ndarray, fractions: tuple[float, ...] = FRACTIONS) -> np.ndarray:
    """Rows: for each fraction, the input with the top evidence tokens of `order` masked
    (comprehensiveness), then for each fraction, the input with every other evidence token
    masked (sufficiency); evidence = passage tokens outside the span (`evidence_tokens`)."""
    evidence = ctx.evidence_tokens()
    passage = np.flatnonzero(evidence)
    ranked = [i for i in order if evidence[i]]
    rows = []
    for keep_top in (False, True):
        for fraction in fractions:
            top = ranked[: max(1, math.ceil(fraction * len(passage)))]
            hidden = np.setdiff1d(passage, top) if keep_top else np.asarray(top)
            ids = ctx.input_ids[0].copy()
            ids[hidden] = _mask_id(ctx)
            rows.append(ids)
    return np.stack(rows)


def measure(ctx: AttributionContext, raw: np.ndarray, fractions: tuple[float, ...] = FRACTIONS) -> Faithfulness:
    """Faithfulness of a token ranking by |raw| (ties broken by position, for determinism).

    The unmasked window's probability comes from the logits the answer pass left in the
    context when it did (one forward row in seven saved per answer), else it joins the masked rows' pass."""
    started = time.perf_counter()
    order = np.lexsort((np.arange(len(raw)), -np.abs(raw)))
    masked = masked_inputs(ctx, order, fractions)
    if ctx.logits is None:
        probs = span_probabilities(ctx, np.concatenate([ctx.input_ids, masked]))
        original, probs = probs[0], probs[1:]
    else:
        original = _span_probability(ctx, ctx.logits[0][np.newaxis], ctx.logits[1][np.newaxis])[0]
        probs = span_probabilities(ctx, masked)
    hidden, kept = probs[:len(fractions)], probs[len(fractions):]
    curve = [{"fraction": f, "hidden": float(h), "kept_only": float(k)} for f, h, k in zip(fractions, hidden, kept)]
    at = fractions.index(SENTENCE_FRACTION) if SENTENCE_FRACTION in fractions else 0
    what = "no-answer score" if ctx.target_start == ctx.target_end == 0 else "confidence"
    sentence = (f"hiding the {fractions[at]:.0%} most salient passage words besides the answer "
                f"{'drops' if hidden[at] < original else 'moves'} the {what} from {original:.0%} to {hidden[at]:.0%}")
    return Faithfulness(
        comprehensiveness=float(np.mean(original - hidden)),
        sufficiency=float(np.mean(original - kept)),
        original=float(original),
        curve=curve,
        sentence=sentence,
        extra_ms=round((time.perf_counter() - started) * 1000, 2),
    )
