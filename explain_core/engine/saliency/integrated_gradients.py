"""Integrated gradients (Sundararajan et al. 2017) from a padding baseline.

The baseline replaces every question/passage token's embedding by the padding token's
and keeps the special tokens, so the model still sees a well-formed pair. The path
integral uses Gauss-Legendre nodes (as Captum's default), batched as rows, and the
completeness delta says how well the steps approximate it. Steps go through the model as
many at a time as the memory budget allows (`AttributionContext.rows_per_pass`).
"""
from __future__ import annotations

import numpy as np

from explain_core.engine.saliency.base import AttributionContext, SaliencyMethod


class IntegratedGradients(SaliencyMethod):
    name = "integrated_gradients"
    signed = True

    def __init__(self, steps: int = 32) -> None:
        self.steps = steps

    def baseline(self, ctx: AttributionContext, embeds: np.ndarray) -> np.ndarray:
        pad_id = ctx.model.tokenizer.pad_token_id or 0
        pad = ctx.model.word_embeddings(np.array([[pad_id]], np.int32)).numpy()[0, 0]
        return np.where(ctx.special_tokens[:, np.newaxis], embeds, pad[np.newaxis, :])

    def attribute(self, ctx: AttributionContext) -> np.ndarray:
        embeds = ctx.embeddings()
        base = self.baseline(ctx, embeds)
        nodes, weights = np.polynomial.legendre.leggauss(self.steps)
        alphas, weights = (nodes + 1) / 2, weights / 2  # from [-1, 1] to [0, 1]
        delta = embeds - base
        total = np.zeros_like(embeds, dtype=np.float64)
        batch = ctx.rows_per_pass(backward=True)
        for first in range(0, self.steps, batch):
            chunk = alphas[first:first + batch]
            rows = base[np.newaxis] + chunk[:, np.newaxis, np.newaxis] * delta[np.newaxis]
            _, grads = ctx.targets_and_gradients(rows)
            # Step by step, so the sum is the same whatever the batch (floating-point addition is not associative).
            for weight, grad in zip(weights[first:first + batch], grads.astype(np.float64)):
                total += weight * grad
        attributions = np.einsum("ld,ld->l", total, delta.astype(np.float64))
        ends, _ = ctx.targets_and_gradients(np.stack([base, embeds]))
        change = float(ends[1] - ends[0])
        ctx.diagnostics["ig_delta"] = abs(float(attributions.sum()) - change) / max(abs(change), 1e-12)
        return attributions
