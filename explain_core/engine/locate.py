"""Where the answer is: windows -> logits -> pipeline decoding -> the best span, in one place.

The engine, the evaluation's random baseline and the randomization sanity check all ask
this question, and they must get the same span, so there is one path. The common case (a
passage that fits one window) costs a single forward+backward pass: the graph picks the
span, the decoder confirms it, and the gradient for the explanation is already there.
Longer passages run a forward pass over all windows; their answer window is not known
until decoding, so a gradient for every window would be wasted.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from explain_core.engine.decode import Candidate, decode
from explain_core.engine.model import QAModel
from explain_core.engine.saliency.base import AttributionContext
from explain_core.engine.windows import Windows, make_windows
from explain_core.settings import DecodeSettings


@dataclass
class AnswerPass:
    """What the model produced for one question: logits of every window, and the span +
    gradient the fused graph chose for a single-window question (None otherwise)."""

    windows: Windows
    start_logits: np.ndarray
    end_logits: np.ndarray
    graph_span: tuple[int, int] | None = None
    gradient: np.ndarray | None = None


@dataclass
class Located:
    """The pipeline's ranking of one question's answers, with the pass they came from."""

    answer_pass: AnswerPass
    ranked: list[Candidate]
    decode_ms: float

    @property
    def windows(self) -> Windows:
        return self.answer_pass.windows

    @property
    def best(self) -> Candidate:
        """The answer shown; when every window's best span fell on tokens the pipeline
        rejects (and no-answer is off), the empty span at [CLS]."""
        return self.ranked[0] if self.ranked else Candidate("", 0, 0, 0.0, 0, 0, 0)

    def context(self, qa: QAModel) -> AttributionContext:
        """The attribution context of the best span's window, with the gradient the answer
        pass already computed when it targeted that same span."""
        best = self.best
        ctx = AttributionContext.for_window(qa, self.windows, best.window, best.token_start, best.token_end)
        if self.answer_pass.graph_span == (best.token_start, best.token_end):
            ctx.gradient = self.answer_pass.gradient
        return ctx


def answer_passes(qa: QAModel, all_windows: list[Windows], settings: DecodeSettings) -> list[AnswerPass]:
    """Run the model once over the windows of several questions: single-window questions
    together through the fused answer+gradient graph, the rest through the forward graph."""
    passes: list[AnswerPass | None] = [None] * len(all_windows)
    single = [i for i, w in enumerate(all_windows) if len(w) == 1]
    if single:
        batch = _stack([all_windows[i] for i in single])
        start, end, starts, ends, grads = qa.answer_and_gradient(
            batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.allowed,
            np.int32(settings.max_answer_len), np.bool_(settings.handle_impossible_answer))
        start, end, grads = start.numpy(), end.numpy(), grads.numpy()
        for row, i in enumerate(single):
            n = all_windows[i].input_ids.shape[1]
            passes[i] = AnswerPass(all_windows[i], start[row:row + 1, :n], end[row:row + 1, :n],
                                   (int(starts[row]), int(ends[row])), grads[row, :n])
    rest = [i for i in range(len(all_windows)) if passes[i] is None]
    if rest:
        batch = _stack([all_windows[i] for i in rest])
        start, end = (t.numpy() for t in qa.logits(batch.input_ids, batch.attention_mask, batch.token_type_ids))
        row = 0
        for i in rest:
            count, n = all_windows[i].input_ids.shape
            passes[i] = AnswerPass(all_windows[i], start[row:row + count, :n], end[row:row + count, :n])
            row += count
    return [p for p in passes if p is not None]


def _stack(parts: list[Windows]) -> Windows:
    """Concatenate windows of several questions into one right-padded batch."""
    width = max(w.input_ids.shape[1] for w in parts)

    def pad(name: str, fill: int) -> np.ndarray:
        return np.concatenate([np.pad(getattr(w, name), ((0, 0), (0, width - getattr(w, name).shape[1])),
                                      constant_values=fill) for w in parts])

    return Windows(pad("input_ids", 0), pad("attention_mask", 0), pad("token_type_ids", 0), pad("p_mask", 1),
                   [e for w in parts for e in w.encodings], "", False, parts[0].question_first)


def locate_all(qa: QAModel, all_windows: list[Windows], passages: list[str],
               settings: DecodeSettings) -> list[Located]:
    """Answer passes for several questions, then the pipeline's decoding of each."""
    located = []
    for answer_pass, passage in zip(answer_passes(qa, all_windows, settings), passages):
        started = time.perf_counter()
        ranked = decode(answer_pass.windows, passage, answer_pass.start_logits, answer_pass.end_logits, settings)
        located.append(Located(answer_pass, ranked, (time.perf_counter() - started) * 1000))
    return located


def locate(qa: QAModel, question: str, passage: str, settings: DecodeSettings) -> Located:
    """The answer to one question, found exactly as `explain` finds it."""
    windows = make_windows(qa.tokenizer, question, passage, settings)
    return locate_all(qa, [windows], [passage], settings)[0]
