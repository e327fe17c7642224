"""Integrated gradients (Sundararajan et al. 2017) from a chosen baseline.

The baseline replaces every question/passage token's embedding and keeps the special
tokens, so the model still sees a well-formed pair. What replaces it is the choice that
matters for text (Sturmfels et al. 2020, "Visualizing the impact of feature attribution
baselines"): the padding token's embedding ("pad"), the [MASK] token's ("mask"), the zero
vector ("zero"), or the mean of the maps from several references of random vocabulary
tokens ("mean", an expected-gradients-style average; the steps are shared among them, so
it costs what one baseline costs). The defaults were chosen by measurement
(`python -m explain_core.evaluation.tuning`, docs/evaluation.md). The path integral uses
Gauss-Legendre nodes (as Captum's default), batched as rows, as many at a time as the memory
budget allows (`AttributionContext.rows_per_pass`), and the completeness delta says how well
the steps approximate it.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from explain_core.engine.saliency.base import AttributionContext, SaliencyMethod


class IntegratedGradients(SaliencyMethod):
    name = "integrated_gradients"
    signed = True
    BASELINES: ClassVar[tuple[str, ...]] = ("pad", "mask", "zero", "mean")

    def __init__(self, steps: int = 32, baseline: str = "pad", references: int = 4, seed: int = 0) -> None:
        if baseline not in self.BASELINES:
            raise ValueError(f"baseline must be one of {self.BASELINES}, not {baseline!r}")
        self.steps = steps
        self.baseline = baseline
        self.references = references if baseline == "mean" else 1
        self.seed = seed

    def baselines(self, ctx: AttributionContext, embeds: np.ndarray) -> list[np.ndarray]:
        """The reference inputs [length, dim] whose maps are averaged (one, except for "mean")."""
        keep = ctx.special_tokens[:, np.newaxis]
        if self.baseline == "zero":
            return [np.where(keep, embeds, 0.0).astype(embeds.dtype)]
        tokenizer = ctx.model.tokenizer
        if self.baseline == "mean":
            rng = np.random.default_rng(self.seed)
            specials = set(tokenizer.all_special_ids)
            words = np.array([i for i in range(len(tokenizer)) if i not in specials], np.int32)
            draws = rng.choice(words, size=(self.references, embeds.shape[0])).astype(np.int32)
            return [np.where(keep, embeds, e) for e in ctx.model.word_embeddings(draws).numpy()]
        token = tokenizer.mask_token_id if self.baseline == "mask" else tokenizer.pad_token_id
        row = ctx.model.word_embeddings(np.array([[token or 0]], np.int32)).numpy()[0, 0]
        return [np.where(keep, embeds, row[np.newaxis, :])]

    def attribute(self, ctx: AttributionContext) -> np.ndarray:
        embeds = ctx.embeddings()
        bases = self.baselines(ctx, embeds)
        nodes, weights = np.polynomial.legendre.leggauss(max(1, self.steps // len(bases)))
        alphas, weights = (nodes + 1) / 2, weights / 2  # from [-1, 1] to [0, 1]
        attributions = np.zeros(embeds.shape[0], dtype=np.float64)
        batch = ctx.rows_per_pass(backward=True)
        for base in bases:
            delta = embeds - base
            total = np.zeros_like(embeds, dtype=np.float64)
            for first in range(0, len(alphas), batch):
                chunk = alphas[first:first + batch]
                rows = base[np.newaxis] + chunk[:, np.newaxis, np.newaxis] * delta[np.newaxis]
                _, grads = ctx.targets_and_gradients(rows)
                # Step by step, so the sum is the same whatever the batch (floating-point addition is not associative).
                for weight, grad in zip(weights[first:first + batch], grads.astype(np.float64)):
                    total += weight * grad
            attributions += np.einsum("ld,ld->l", total, delta.astype(np.float64)) / len(bases)
        ends, _ = ctx.targets_and_gradients(np.stack([*bases, embeds]))
        change = float(ends[-1] - ends[:-1].mean())
        ctx.diagnostics["ig_delta"] = abs(float(attributions.sum()) - change) / max(abs(change), 1e-12)
        return attributions
