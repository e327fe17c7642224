"""The one reader of the environment, and the settings every process shares.

Each process builds its own settings on this module (`bot.settings.BotSettings`,
`explain_core.worker.config.WorkerConfig`), so a variable is parsed in one place, its
default comes from `explain_core.defaults`, and a malformed value fails at start-up with
one `ConfigError` line naming the variable, not deep inside a job.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from explain_core import defaults
from explain_core.errors import ConfigError

T = TypeVar("T")


class Env:
    """Typed reads of environment variables (`os.environ` unless a mapping is given, as tests do).

    An empty value counts as unset, so `QA_MODEL=` in a .env file means "the default".
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def optional(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def integer(self, name: str, default: int, *, low: int | None = None) -> int:
        return int(self._number(name, default, int, low))

    def number(self, name: str, default: float, *, low: float | None = None) -> float:
        return float(self._number(name, default, float, low))

    def names(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(part.strip() for part in self._environ.get(name, "").split(",") if part.strip())

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be {' or '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def _number(self, name: str, default: float, kind: type[int] | type[float], low: float | None) -> float:
        raw = self.optional(name)
        try:
            value = kind(raw) if raw is not None else default
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
        if low is not None and value < low:
            raise ConfigError(f"{name} must be at least {low}, not {value}")
        return value


def read_or_exit(program: str, read: Callable[[], T]) -> T:
    """A process's settings, or exit 2 with one line naming the variable: a bad setting is
    the operator's to fix, and a traceback would bury the one line that says how."""
    try:
        return read()
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def default_model(env: Env | None = None) -> str:
    """The checkpoint to use when none is named: `QA_MODEL`, else a hub SQuAD model."""
    return (env or Env()).text("QA_MODEL", defaults.MODEL)


def compare_models(env: Env | None = None) -> tuple[str, ...]:
    """The checkpoints a comparison runs (`QA_MODELS`, comma-separated); the default model alone if unset."""
    env = env or Env()
    return env.names("QA_MODELS") or (default_model(env),)


def max_passage_chars(env: Env | None = None) -> int:
    """Longest passage accepted (characters), read at each call so both sides see one limit."""
    return (env or Env()).integer("QA_MAX_PASSAGE_CHARS", defaults.MAX_PASSAGE_CHARS, low=1)


_SIZE = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmgt]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """Bytes from "1500000000", "1.5GB", "800 MB", "2GiB" (k/M/G/T are powers of ten, Ki/Mi/Gi/Ti of two)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    unit = (match.group("unit") or "").lower().removesuffix("b")
    return int(float(match.group("number")) * _UNITS[unit])


def memory_budget(default: int, env: Env | None = None) -> int:
    """`QA_MEMORY_BUDGET`: bytes of activations one pass of the model may hold (on top of its
    weights); every pass's batch is derived from it (explain_core.engine.budget), so it bounds
    the engine's peak memory whatever the passage length or the number of questions."""
    raw = (env or Env()).optional("QA_MEMORY_BUDGET")
    if raw is None:
        return default
    try:
        value = parse_size(raw)
    except ValueError:
        raise ConfigError(f"QA_MEMORY_BUDGET={raw!r} is not a size (bytes, or e.g. 1.5GB, 800MB)") from None
    if value < 1:
        raise ConfigError(f"QA_MEMORY_BUDGET must be at least 1 byte, not {raw!r}")
    return value


def precision(env: Env | None = None) -> str:
    """`QA_PRECISION`: "float32" (answers equal to the pipeline's) or "bfloat16".

    bfloat16 keeps float32 weights and computes in bfloat16 (Keras' mixed_bfloat16 policy),
    which is faster on CPUs with AVX-512 BF16 or AMX; its answers can differ slightly.
    """
    return (env or Env()).choice("QA_PRECISION", defaults.PRECISION, ("float32", "bfloat16"))


def namespace(env: Env | None = None) -> str:
    """`QA_NAMESPACE`: the prefix of every Redis key, so several deployments can share one Redis."""
    return (env or Env()).text("QA_NAMESPACE", defaults.NAMESPACE)


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
