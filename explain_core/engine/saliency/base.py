"""The one interface every saliency method implements (as Captum's `Attribution`).

A method gets the single window that holds the shown answer and the target span in it,
and returns one raw score per token. Normalising, word aggregation and rendering are
shared, so a new method is one small module.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from explain_core.engine.budget import default_budget
from explain_core.engine.model import QAModel
from explain_core.engine.windows import Windows
from explain_core.engine.words import sequence_ids


@dataclass
class AttributionContext:
    """One window ([1, length] arrays) and the span whose logits are explained.

    Methods that need many rows (integrated gradients' steps, SmoothGrad's samples, the
    faithfulness re-runs) take them `rows_per_pass` at a time, so the memory budget bounds
    them as it bounds the answer pass.

    `gradient` (d target / d word embeddings, [length, dim]) is filled by the answer pass
    when it could compute it for free, and `logits` (start and end, [length] each) by the
    answer pass that located the span, so that faithfulness needs no pass for the unmasked
    window; `diagnostics` collects numbers a method reports (integrated gradients'
    completeness delta).
    """

    model: QAModel
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    target_start: int
    target_end: int
    special_tokens: np.ndarray  # bool [length]: [CLS]/[SEP]/padding, kept as is by baselines
    allowed: np.ndarray  # float [length]: 1 for tokens in the pipeline's softmax (passage and [CLS])
    passage_tokens: np.ndarray  # bool [length]: the passage's tokens (what faithfulness masks)
    gradient: np.ndarray | None = None
    logits: tuple[np.ndarray, np.ndarray] | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)
    gradient_rows: int = 0  # forward+backward passes (one row each) spent here: what a method costs
    budget: int = field(default_factory=default_budget)  # bytes a pass may hold (explain_core.engine.budget)

    @classmethod
    def for_window(cls, model: QAModel, windows: Windows, window: int, start: int, end: int) -> AttributionContext:
        """The context for one window of a question's windows, cut to its real length."""
        n = int(windows.lengths[window])
        return cls(
            model=model,
            input_ids=windows.input_ids[window:window + 1, :n],
            attention_mask=windows.attention_mask[window:window + 1, :n],
            token_type_ids=windows.token_type_ids[window:window + 1, :n],
            target_start=start,
            target_end=end,
            special_tokens=np.isnan(sequence_ids(windows.encodings[window]))[:n],
            allowed=windows.allowed[window, :n],
            passage_tokens=(sequence_ids(windows.encodings[window]) == windows.passage_segment())[:n],
        )

    def evidence_tokens(self) -> np.ndarray:
        """Bool [length]: the passage tokens outside the explained span, the evidence that
        faithfulness masks or keeps (the span itself always stays: see `Explanation.evidence`)."""
        evidence = self.passage_tokens.copy()
        evidence[self.target_start:self.target_end + 1] = False
        return evidence

    def embeddings(self) -> np.ndarray:
        """Word embeddings of the window's tokens, [length, dim]."""
        return self.model.word_embeddings(self.input_ids).numpy()[0]

    def rows_per_pass(self, backward: bool) -> int:
        """Rows of this window that one pass may take within the budget (at least one)."""
        return self.model.footprint.rows(self.budget, self.input_ids.shape[1], backward)

    def targets_and_gradients(self, embeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target logit sum and its gradient for embedding rows [rows, length, dim], in passes
        of at most `rows_per_pass(backward=True)` rows (rows are independent: see `gradient_at`)."""
        step = self.rows_per_pass(backward=True)
        self.gradient_rows += embeds.shape[0]
        targets, grads = [], []
        for first in range(0, embeds.shape[0], step):
            rows = min(step, embeds.shape[0] - first)
            target, grad = self.model.gradient_at(
                embeds[first:first + rows].astype(np.float32),
                np.repeat(self.input_ids, rows, axis=0),
                np.repeat(self.attention_mask, rows, axis=0),
                np.repeat(self.token_type_ids, rows, axis=0),
                np.full([rows], self.target_start, np.int32),
                np.full([rows], self.target_end, np.int32),
            )
            targets.append(target.numpy())
            grads.append(grad.numpy())
        return np.concatenate(targets), np.concatenate(grads)

    def plain_gradient(self) -> np.ndarray:
        """The gradient at the actual input, computed once and shared by the methods that need it."""
        if self.gradient is None:
            _, grad = self.targets_and_gradients(self.embeddings()[np.newaxis])
            self.gradient = grad[0]
        return self.gradient


class SaliencyMethod(ABC):
    """A way to score how much each input token drove the target span's logits.

    `signed` methods say whether a token pushed the answer up or down; unsigned ones say how
    much it mattered. Word scores aggregate by sum for signed methods (attributions add up)
    and by L2 norm for unsigned ones (the norm of the word's whole one-hot gradient).
    """

    name: ClassVar[str]
    signed: ClassVar[bool]

    @abstractmethod
    def attribute(self, ctx: AttributionContext) -> np.ndarray:
        """Raw score per token of the window, shape [length]."""
