"""Defaults shared by the CLI, the worker and the bot, overridable by environment variables.

One place for them so that the bot's validation and the worker's agree on limits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_MODEL = "distilbert-base-cased-distilled-squad"
DEFAULT_METHOD = "vanilla"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class DecodeSettings:
    """The question-answering pipeline's knobs, with the pipeline's defaults.

    `handle_impossible_answer` is on by default because the product answers questions whose
    passage may not hold the answer (SQuAD2-style models); turn it off for SQuAD1 models.
    """

    max_seq_len: int = 384
    doc_stride: int = 128
    max_question_len: int = 64
    max_answer_len: int = 15
    top_k: int = 1
    handle_impossible_answer: bool = True
    align_to_words: bool = True


def default_model() -> str:
    """The checkpoint to use when none is named: `QA_MODEL`, else a hub SQuAD model."""
    return os.environ.get("QA_MODEL") or DEFAULT_MODEL


def max_passage_chars() -> int:
    """Longest passage accepted (characters); `QA_MAX_PASSAGE_CHARS` overrides 200,000."""
    return _env_int("QA_MAX_PASSAGE_CHARS", 200_000)


def compare_models() -> list[str]:
    """The checkpoints a comparison runs (`QA_MODELS`, comma-separated); the default model alone if unset."""
    names = [name.strip() for name in os.environ.get("QA_MODELS", "").split(",") if name.strip()]
    return names or [default_model()]
