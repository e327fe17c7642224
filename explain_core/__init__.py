"""Answer questions about a passage with a BERT-family QA model, and explain the answer.

The TensorFlow parts are imported on first use, so that `explain_core.queue`,
`explain_core.jobs` and `explain_core.summary` stay importable by the bot without them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explain_core.errors import InputError
from explain_core.result import Attribution, Explanation, Faithfulness, Span

if TYPE_CHECKING:
    from explain_core.engine import explain, explain_batch
    from explain_core.model import QAModel, load_model
    from explain_core.saliency import METHODS

_LAZY = {
    "explain": "explain_core.engine",
    "explain_batch": "explain_core.engine",
    "load_model": "explain_core.model",
    "QAModel": "explain_core.model",
    "METHODS": "explain_core.saliency",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'explain_core' has no attribute {name!r}")


__all__ = ["Attribution", "Explanation", "Faithfulness", "InputError", "Span", *_LAZY]
