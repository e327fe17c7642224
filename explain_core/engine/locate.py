"""Where the answer is: windows -> logits -> pipeline decoding -> the best span, in one place.

The engine, the evaluation's random baseline and the randomization sanity check all ask
this question, and they must get the same span, so there is one path. The common case (a
passage that fits one window) costs a single forward+backward pass: the graph picks the
span, the decoder confirms it, and the gradient for the explanation is already there.
Longer passages run a forward pass over all windows; their answer window is not known
until decoding, so a gradient for every window would be wasted.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from explain_core.engine.budget import default_budget
from explain_core.engine.decode import Candidate, decode
from explain_core.engine.model import QAModel
from explain_core.engine.saliency.base import AttributionContext
from explain_core.engine.windows import Windows, make_windows
from explain_core.settings import DecodeSettings

# Called as windows are read: (question's index, its windows read, its windows in all), so a
# front end can show how far a long document has got.
WindowsRead = Callable[[int, int, int], None]


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
        """The attribution context of the best span's window, with the window's logits and,
        when the answer pass targeted that same span, its gradient: what that pass already computed."""
        best = self.best
        ctx = AttributionContext.for_window(qa, self.windows, best.window, best.token_start, best.token_end)
        n = ctx.input_ids.shape[1]
        ctx.logits = (self.answer_pass.start_logits[best.window, :n], self.answer_pass.end_logits[best.window, :n])
        if self.answer_pass.graph_span == (best.token_start, best.token_end):
            ctx.gradient = self.answer_pass.gradient
        return ctx

    def top(self, passage: str, settings: DecodeSettings, k: int) -> list[Candidate]:
        """The pipeline's answers with `top_k=k`: decoded again from the same logits, since
        top_k changes the candidates decoding keeps and the answer shown must stay top_k=1's."""
        ap = self.answer_pass
        return decode(ap.windows, passage, ap.start_logits, ap.end_logits, replace(settings, top_k=k))[:k]


def answer_passes(qa: QAModel, all_windows: list[Windows], settings: DecodeSettings,
                  budget: int | None = None, progress: WindowsRead | None = None) -> list[AnswerPass]:
    """Run the model over the windows of several questions: single-window questions
    through the fused answer+gradient graph, the rest through the forward graph, each in
    batches that hold at most `budget` bytes (default `default_budget()`; explain_core.engine.budget),
    so peak memory is set by configuration, not by the passage's length or the batch's size.
    `progress` hears of each multi-window question's windows as their batches finish."""
    budget = budget or default_budget()
    footprint = qa.footprint
    passes: list[AnswerPass | None] = [None] * len(all_windows)
    single = [i for i, w in enumerate(all_windows) if len(w) == 1]
    fused = functools.partial(footprint.rows, budget, backward=True)
    for group in _groups([(i, 0, 1) for i in single], all_windows, fused):
        chosen = [i for i, _, _ in group]
        batch = _stack([all_windows[i] for i in chosen])
        start, end, starts, ends, grads = qa.answer_and_gradient(
            batch.input_ids, batch.attention_mask, batch.token_type_ids, batch.allowed,
            np.int32(settings.max_answer_len), np.bool_(settings.handle_impossible_answer))
        start, end, grads = start.numpy(), end.numpy(), grads.numpy()
        for row, i in enumerate(chosen):
            n = all_windows[i].input_ids.shape[1]
            passes[i] = AnswerPass(all_windows[i], start[row:row + 1, :n], end[row:row + 1, :n],
                                   (int(starts[row]), int(ends[row])), grads[row, :n])
    rest = [i for i in range(len(all_windows)) if passes[i] is None]
    starts_of: dict[int, list[np.ndarray]] = {i: [] for i in rest}
    ends_of: dict[int, list[np.ndarray]] = {i: [] for i in rest}
    forward = functools.partial(footprint.rows, budget, backward=False)
    for group in _groups([(i, 0, len(all_windows[i])) for i in rest], all_windows, forward):
        batch = _stack([all_windows[i].rows(lo, hi) for i, lo, hi in group])
        start, end = (t.numpy() for t in qa.logits(batch.input_ids, batch.attention_mask, batch.token_type_ids))
        row = 0
        for i, lo, hi in group:
            n = all_windows[i].input_ids.shape[1]
            starts_of[i].append(start[row:row + hi - lo, :n])
            ends_of[i].append(end[row:row + hi - lo, :n])
            row += hi - lo
            if progress is not None:
                progress(i, hi, len(all_windows[i]))
    for i in rest:
        passes[i] = AnswerPass(all_windows[i], np.concatenate(starts_of[i]), np.concatenate(ends_of[i]))
    return [p for p in passes if p is not None]


def _groups(pieces: list[tuple[int, int, int]], all_windows: list[Windows],
            rows_for: Callable[[int], int]) -> Iterator[list[tuple[int, int, int]]]:
    """Pack (question, first row, end row) pieces, in order, into batches of at most
    `rows_for(padded width)` rows, splitting a question's windows where they must (a batch
    holds at least one row, whatever the budget)."""
    group: list[tuple[int, int, int]] = []
    rows = width = 0
    for i, lo, hi in pieces:
        length = all_windows[i].input_ids.shape[1]
        while lo < hi:
            wide = max(width, length)
            fit = min(hi - lo, rows_for(wide) - rows) if group else max(1, min(hi - lo, rows_for(length)))
            if fit <= 0:
                yield group
                group, rows, width = [], 0, 0
                continue
            group.append((i, lo, lo + fit))
            rows, width, lo = rows + fit, wide, lo + fit
    if group:
        yield group


def _stack(parts: list[Windows]) -> Windows:
    """Concatenate windows of several questions into one right-padded batch."""
    width = max(w.input_ids.shape[1] for w in parts)

    def pad(name: str, fill: int) -> np.ndarray:
        return np.concatenate([np.pad(getattr(w, name), ((0, 0), (0, width - getattr(w, name).shape[1])),
                                      constant_values=fill) for w in parts])

    return Windows(pad("input_ids", 0), pad("attention_mask", 0), pad("token_type_ids", 0), pad("p_mask", 1),
                   [e for w in parts for e in w.encodings], "", False, parts[0].question_first)


def locate_all(qa: QAModel, all_windows: list[Windows], passages: list[str],
               settings: DecodeSettings, progress: WindowsRead | None = None) -> list[Located]:
    """Answer passes for several questions, then the pipeline's decoding of each."""
    located = []
    for answer_pass, passage in zip(answer_passes(qa, all_windows, settings, progress=progress), passages):
        started = time.perf_counter()
        ranked = decode(answer_pass.windows, passage, answer_pass.start_logits, answer_pass.end_logits, settings)
        located.append(Located(answer_pass, ranked, (time.perf_counter() - started) * 1000))
    return located


def locate(qa: QAModel, question: str, passage: str, settings: DecodeSettings) -> Located:
    """The answer to one question, found exactly as `explain` finds it."""
    windows = make_windows(qa.tokenizer, question, passage, settings)
    return locate_all(qa, [windows], [passage], settings)[0]
