"""Loading skips the random initial values a checkpoint overwrites, and never leaves a placeholder.

`_load_weights` builds the weights as NaN instead of drawing random values (a third of the load
time), then checks that the checkpoint set every one. The architecture tests check that a full
checkpoint gives transformers' own weights; these check the other case, a checkpoint that lacks
weights, which must end exactly as transformers leaves it: those weights random, never NaN.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest


def test_a_full_checkpoint_is_read_once(tiny_model_dir: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from explain_core.engine.model import load_model

    with caplog.at_level(logging.INFO, logger="explain_core.engine.model"):
        qa = load_model(str(tiny_model_dir))
    assert not [r for r in caplog.records if "not in the checkpoint" in r.getMessage()]
    assert all(np.isfinite(w).all() for w in qa.model.get_weights())


def test_weights_the_checkpoint_lacks_get_random_values_as_in_transformers(
        tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoTokenizer, TFBertModel

    from explain_core.engine.model import load_model

    base = TFBertModel.from_pretrained(tiny_model_dir)  # the encoder only: no QA head
    base.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path)

    with caplog.at_level(logging.INFO, logger="explain_core.engine.model"):
        qa = load_model(str(tmp_path))
    [reloaded] = [r.getMessage() for r in caplog.records if "not in the checkpoint" in r.getMessage()]
    assert "2 weights" in reloaded and "qa_outputs" in reloaded  # the head's kernel and bias
    weights = {w.name.split("/", 1)[1]: w.numpy() for w in qa.model.weights}
    assert all(np.isfinite(value).all() for value in weights.values())
    head = weights["qa_outputs/kernel:0"]
    assert 0 < head.std() < 4 * qa.model.config.initializer_range  # the truncated normal's values
    saved = {w.name.split("/", 1)[1]: w.numpy() for w in base.weights}  # with a pooler the QA model has not
    assert set(weights) - set(saved) == {"qa_outputs/kernel:0", "qa_outputs/bias:0"}
    assert all(np.array_equal(value, saved[name]) for name, value in weights.items() if name in saved)
