"""Gradient x input: the signed first-order estimate of each token's contribution.

In one-hot space the input is the token's indicator, so gradient x input is the gradient
entry of the token actually present: g . E[token], the dot product with its embedding.
"""
from __future__ import annotations

import numpy as np

from explain_core.engine.saliency.base import AttributionContext, SaliencyMethod


class GradientTimesInput(SaliencyMethod):
    name = "grad_x_input"
    signed = True

    def attribute(self, ctx: AttributionContext) -> np.ndarray:
        return np.einsum("ld,ld->l", ctx.plain_gradient().astype(np.float64), ctx.embeddings().astype(np.float64))
