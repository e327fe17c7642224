"""The seed's method: L2 norm over the vocabulary of d(start_logit[s] + end_logit[e]) / d one-hot input."""
from __future__ import annotations

import numpy as np

from explain_core.engine.saliency.base import AttributionContext, SaliencyMethod


class VanillaGradient(SaliencyMethod):
    """Unsigned gradient magnitude; computed from the embedding gradient through E^T E."""

    name = "vanilla"
    signed = False

    def attribute(self, ctx: AttributionContext) -> np.ndarray:
        return ctx.model.one_hot_gradient_norm(ctx.plain_gradient())
