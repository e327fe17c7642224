"""Span decoding equal to the transformers question-answering pipeline.

The per-window scoring is the pipeline's own `select_starts_ends` (softmax over allowed
tokens, P(start)*P(end), max answer length, null score); around it this module does what
the pipeline's `postprocess` does: word alignment, merging candidates with the same text
(their scores add up), the null answer, top-k. It also remembers which window and which
tokens each answer came from, which the pipeline throws away and the explanation needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tokenizers import Encoding
from transformers.pipelines.question_answering import select_starts_ends

from explain_core.engine.windows import Windows
from explain_core.settings import DecodeSettings


@dataclass
class Candidate:
    """An answer with the window and token span it was first found at."""

    answer: str
    start: int
    end: int
    score: float
    window: int
    token_start: int
    token_end: int

    @property
    def is_null(self) -> bool:
        return self.token_start == 0 and self.token_end == 0 and self.answer == ""


def _char_span(enc: Encoding, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
    """The pipeline's `get_indices`: widen a token span to whole words where the tokenizer knows words."""
    if align_to_words:
        try:
            start_word = enc.token_to_word(s)
            end_word = enc.token_to_word(e)
            return (enc.word_to_chars(start_word, sequence_index=sequence_index)[0],
                    enc.word_to_chars(end_word, sequence_index=sequence_index)[1])
        except Exception:  # the pipeline's own fallback: tokenizers without word ids
            pass
    return enc.offsets[s][0], enc.offsets[e][1]


def decode(windows: Windows, passage: str, start_logits: np.ndarray, end_logits: np.ndarray,
           settings: DecodeSettings) -> list[Candidate]:
    """All answers ranked as the pipeline ranks them; the null answer included when allowed.

    Returns more than `top_k` so a caller can report the best rejected span of a no-answer.
    """
    min_null_score = 1000000.0
    null_window = 0
    answers: list[Candidate] = []
    by_text: dict[str, Candidate] = {}
    pre_topk = settings.top_k * 2 + 10 if settings.align_to_words else settings.top_k
    for w in range(len(windows)):
        n = int(windows.lengths[w])
        starts, ends, scores, window_null = select_starts_ends(
            start_logits[w:w + 1, :n],
            end_logits[w:w + 1, :n],
            windows.p_mask[w, :n],
            windows.attention_mask[w:w + 1, :n],
            min_null_score,
            pre_topk,
            settings.handle_impossible_answer,
            settings.max_answer_len,
        )
        if window_null < min_null_score:
            min_null_score, null_window = window_null, w
        for s, e, score in zip(starts, ends, scores):
            char_start, char_end = _char_span(windows.encodings[w], int(s), int(e),
                                              windows.passage_segment(), settings.align_to_words)
            text = passage[char_start:char_end]
            known = by_text.get(text.lower())
            if known is not None:
                known.score += score.item()
                continue
            candidate = Candidate(text, char_start, char_end, score.item(), w, int(s), int(e))
            by_text[text.lower()] = candidate
            answers.append(candidate)
    if settings.handle_impossible_answer:
        answers.append(Candidate("", 0, 0, min_null_score, null_window, 0, 0))
    return sorted(answers, key=lambda c: c.score, reverse=True)
