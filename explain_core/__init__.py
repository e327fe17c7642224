"""Answer questions about a passage with a BERT-family QA model, and explain the answer.

The package is grouped by runtime, so that its folders say which process may import what:
`engine/` (TensorFlow), `render/` (PIL), `present/` and `queue/` (neither: the bot imports
them), `worker/` (the qa-worker process) and `evaluation/` (offline studies). The engine is
imported on first use of `explain`, `explain_batch` or `load_model`, so importing this
package stays light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from explain_core.errors import InputError
from explain_core.explanation import Attribution, Explanation, Faithfulness, Span

if TYPE_CHECKING:
    from explain_core.engine import METHODS, QAModel, explain, explain_batch, load_model

_ENGINE = frozenset({"explain", "explain_batch", "load_model", "QAModel", "METHODS"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from explain_core import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'explain_core' has no attribute {name!r}")


__all__ = ["METHODS", "Attribution", "Explanation", "Faithfulness", "InputError", "QAModel", "Span", "explain",
           "explain_batch", "load_model"]
