"""The tiny test checkpoints load like real ones, are reproducible, and give usable logits.

Every engine test rests on these models: a checkpoint that changed between runs would make
failures unreproducible, and a QA head with flat logits would make score comparisons vacuous.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.tiny_models import build_tiny_model

PASSAGE = "The harbour town of Port Elwyn was founded in 1742 by fishermen from Cornwall."


@pytest.mark.parametrize("kind", ["bert", "distilbert", "roberta"])
def test_loads_with_auto_classes_and_gives_varied_logits(kind: str, tiny_model_dirs: dict[str, Path]) -> None:
    from transformers import AutoTokenizer, TFAutoModelForQuestionAnswering

    path = tiny_model_dirs[kind]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = TFAutoModelForQuestionAnswering.from_pretrained(path)
    assert tokenizer.is_fast
    assert tokenizer.model_max_length == 512  # so the QA pipeline uses max_seq_len 384
    assert model.config.model_type == kind
    out = model(dict(tokenizer("Who founded Port Elwyn?", PASSAGE, return_tensors="tf")))
    for logits in (out.start_logits.numpy()[0], out.end_logits.numpy()[0]):
        assert logits.std() > 1.0  # a peaked softmax: span scores differ well beyond 1e-4


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_same_seed_same_checkpoint(kind: str, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    from transformers import TFAutoModelForQuestionAnswering

    again = build_tiny_model(kind, tmp_path / "again")
    for name in ("config.json", "tokenizer.json"):
        assert (again / name).read_text() == (tiny_model_dirs[kind] / name).read_text()
    first = TFAutoModelForQuestionAnswering.from_pretrained(tiny_model_dirs[kind]).get_weights()
    second = TFAutoModelForQuestionAnswering.from_pretrained(again).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_other_seed_other_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import TFAutoModelForQuestionAnswering

    other = build_tiny_model("bert", tmp_path / "seed1", seed=1)
    first = TFAutoModelForQuestionAnswering.from_pretrained(tiny_model_dir).get_weights()
    second = TFAutoModelForQuestionAnswering.from_pretrained(other).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
