"""Question + passage -> model windows, exactly as the transformers QA pipeline builds them.

Long passages become overlapping windows (stride); each window keeps its tokenizer
`Encoding` so answers and saliency map back to character offsets of the original text.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from tokenizers import Encoding
from transformers import PreTrainedTokenizerFast

from explain_core.engine.words import sequence_ids
from explain_core.settings import DecodeSettings

log = logging.getLogger(__name__)


@dataclass
class Windows:
    """Padded arrays for all windows of one question/passage pair ([windows, length])."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    p_mask: np.ndarray  # 1 where a token cannot be part of an answer (the pipeline's rule, quirks included)
    encodings: list[Encoding]
    question: str  # the question text the model saw (truncated if it was too long)
    question_truncated: bool
    question_first: bool

    def __len__(self) -> int:
        return len(self.encodings)

    def rows(self, lo: int, hi: int) -> Windows:
        """Windows `lo`..`hi` only (views, not copies): a long passage's windows go through
        the model in several batches."""
        return replace(self, input_ids=self.input_ids[lo:hi], attention_mask=self.attention_mask[lo:hi],
                       token_type_ids=self.token_type_ids[lo:hi], p_mask=self.p_mask[lo:hi],
                       encodings=self.encodings[lo:hi])

    @property
    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)

    @property
    def allowed(self) -> np.ndarray:
        """1.0 where the pipeline lets a token into the softmax (context tokens and [CLS]; every
        token when the question comes last)."""
        return ((1 - self.p_mask) & self.attention_mask).astype(np.float32)

    def passage_segment(self) -> int:
        """The tokenizer's sequence index of the passage (1 when the question comes first)."""
        return 1 if self.question_first else 0


def truncate_question(tokenizer: PreTrainedTokenizerFast, question: str, max_tokens: int) -> tuple[str, bool]:
    """Cut the question after `max_tokens` tokens, on a token boundary, as the pipeline's
    slow path does (its fast path would instead fail on very long questions)."""
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= max_tokens:
        return question, False
    cut = offsets[max_tokens - 1][1]
    log.warning("question has %d tokens; truncated to %d", len(offsets), max_tokens)
    return question[:cut], True


def make_windows(tokenizer: PreTrainedTokenizerFast, question: str, passage: str,
                 settings: DecodeSettings) -> Windows:
    """Tokenize with the pipeline's arguments and pad the windows into one batch."""
    max_seq_len = min(tokenizer.model_max_length, settings.max_seq_len)
    doc_stride = min(max_seq_len // 2, settings.doc_stride)
    question, truncated = truncate_question(tokenizer, question, settings.max_question_len)
    question_first = tokenizer.padding_side == "right"
    encoded = tokenizer(
        text=question if question_first else passage,
        text_pair=passage if question_first else question,
        padding="do_not_pad",
        truncation="only_second" if question_first else "only_first",
        max_length=max_seq_len,
        stride=doc_stride,
        return_token_type_ids=True,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    count = len(encoded["input_ids"])
    width = max(len(ids) for ids in encoded["input_ids"])
    input_ids = np.full((count, width), tokenizer.pad_token_id or 0, dtype=np.int32)
    attention = np.zeros((count, width), dtype=np.int32)
    token_types = np.zeros((count, width), dtype=np.int32)
    p_mask = np.ones((count, width), dtype=np.int32)
    passage_index = 1 if question_first else 0
    for row in range(count):
        ids = encoded["input_ids"][row]
        n = len(ids)
        input_ids[row, :n] = ids
        attention[row, :n] = 1
        token_types[row, :n] = encoded["token_type_ids"][row]
        # The pipeline's p_mask: the question and the special tokens (NaN != index too) when the
        # question comes first; nothing when it comes last (XLNet), where every token is in the softmax.
        p_mask[row, :n] = sequence_ids(encoded[row]) != passage_index if question_first else 0
        if tokenizer.cls_token_id is not None:
            p_mask[row, :n][np.asarray(ids) == tokenizer.cls_token_id] = 0
    return Windows(
        input_ids=input_ids,
        attention_mask=attention,
        token_type_ids=token_types,
        p_mask=p_mask,
        encodings=[encoded[row] for row in range(count)],
        question=question,
        question_truncated=truncated,
        question_first=question_first,
    )
