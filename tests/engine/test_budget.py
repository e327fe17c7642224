"""The memory budget: every pass's batch is derived from it, and nothing a user sees depends on it.

`QA_MEMORY_BUDGET` replaced a token budget that bounded forward passes only: gradient passes,
which keep every layer's activations, took 16 questions' windows at once and a 12-layer model
reached 14-22 GB. These tests hold the estimate to the shape of the cost (layers, length^2 for
attention, gradients), check that each pass really takes the rows the budget allows, and that
answers, scores, attributions and faithfulness are the same under a budget of one byte and of a
terabyte.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import BertConfig, DistilBertConfig, RobertaConfig

from explain_core import explain_batch
from explain_core.engine import load_model
from explain_core.engine.budget import Footprint
from explain_core.engine.saliency import METHODS
from explain_core.errors import ConfigError
from explain_core.settings import Env, memory_budget, parse_size

FILLER = "The lighthouse keepers wrote their logs by lamplight every night of the year. "
ITEMS = [
    ("Who built it?", "Robert Stevenson built the Bell Rock Lighthouse in 1810, on a reef in the North Sea."),
    ("When was it lit?", FILLER * 30 + "It was first lit in 1811. " + FILLER * 10),  # many windows
    ("Where is it?", "It stands on a reef off the coast of Angus, Scotland, eleven miles out to sea."),
    ("Why was it built?", "Ships were wrecked on the reef every winter, so the lighthouse board built a light."),
]
HUGE = 10**12


def test_the_sizes_are_read_from_each_architectures_config() -> None:
    assert Footprint.of(BertConfig()) == Footprint(layers=12, hidden=768, heads=12, intermediate=3072)
    assert Footprint.of(DistilBertConfig()) == Footprint(layers=6, hidden=768, heads=12, intermediate=3072)
    assert Footprint.of(BertConfig(num_hidden_layers=6, hidden_size=384, intermediate_size=1536)) == \
        Footprint(layers=6, hidden=384, heads=12, intermediate=1536)


@pytest.mark.parametrize("backward", [False, True])
def test_bigger_models_and_longer_windows_get_smaller_batches(backward: bool) -> None:
    base = Footprint.of(RobertaConfig())
    budget = 10 * base.row_bytes(384, backward)
    rows = base.rows(budget, 384, backward)
    assert rows == 10
    assert Footprint.of(BertConfig(num_hidden_layers=24)).rows(budget, 384, backward) <= rows
    assert Footprint.of(BertConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16)).rows(
        budget, 384, backward) < rows
    assert base.rows(budget, 128, backward) > rows
    # Attention maps grow with the square of the length: a window 4x longer costs more than 4x.
    assert base.row_bytes(512, backward) > 4 * base.row_bytes(128, backward)
    assert base.rows(2 * budget, 384, backward) >= 2 * rows - 1  # twice the budget, about twice the rows


def test_a_gradient_pass_costs_about_a_layer_count_more_than_a_forward_pass() -> None:
    for layers in (2, 6, 12, 24):
        shape = Footprint.of(BertConfig(num_hidden_layers=layers))
        ratio = shape.row_bytes(384, backward=True) / shape.row_bytes(384, backward=False)
        assert layers * 0.5 < ratio < (layers + 2) * 1.5
    deep, shallow = Footprint.of(BertConfig(num_hidden_layers=12)), Footprint.of(BertConfig(num_hidden_layers=6))
    assert deep.rows(10**9, 384, True) < shallow.rows(10**9, 384, True)
    assert deep.rows(10**9, 384, False) == shallow.rows(10**9, 384, False)  # forward: one layer alive at a time


def test_a_budget_below_one_window_still_takes_one_row() -> None:
    shape = Footprint.of(RobertaConfig())
    assert shape.rows(1, 384, backward=True) == shape.rows(1, 384, backward=False) == 1


@pytest.mark.parametrize(("text", "size"), [("1500000000", 1_500_000_000), ("1.5GB", 1_500_000_000),
                                            ("800 MB", 800_000_000), ("2GiB", 2 * 2**30), ("512k", 512_000),
                                            ("64", 64)])
def test_sizes_are_read_in_bytes_or_units(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert memory_budget(1, Env({"QA_MEMORY_BUDGET": text})) == size


@pytest.mark.parametrize("text", ["lots", "1.5 parsecs", "-1GB", "0"])
def test_a_malformed_budget_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="QA_MEMORY_BUDGET"):
        memory_budget(1, Env({"QA_MEMORY_BUDGET": text}))


def _record_batches(qa: Any, monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int, int]]:
    """The (graph, rows, width) of every call of the model's three graphs, without changing them."""
    seen: Counter[tuple[str, int, int]] = Counter()
    for name in ("logits", "gradient_at", "answer_and_gradient"):
        real = getattr(qa, name)

        def recorded(*args: Any, _real: Any = real, _name: str = name) -> Any:
            ids = args[1] if _name == "gradient_at" else args[0]
            seen[(_name, *np.shape(ids))] += 1
            return _real(*args)

        monkeypatch.setattr(qa, name, recorded)
    return seen


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad"])
def test_every_pass_takes_the_rows_the_budget_allows(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     method: str) -> None:
    qa = load_model(str(tiny_model_dir))
    seen = _record_batches(qa, monkeypatch)
    row = qa.footprint.row_bytes(128, backward=True)
    monkeypatch.setenv("QA_MEMORY_BUDGET", str(3 * row))
    explain_batch(ITEMS, model=qa, method=method, faithfulness=True)
    assert seen, "no pass was recorded"
    for (graph, rows, width), _ in seen.items():
        allowed = qa.footprint.rows(3 * row, width, backward=graph != "logits")
        assert rows <= allowed, (graph, rows, width, allowed)
    # Each kind of pass was cut by the budget: gradients into batches of the rows allowed
    # (3 at a short window), forward passes into more rows than a gradient pass may take.
    assert max(rows for (graph, rows, _), _ in seen.items() if graph == "answer_and_gradient") == 3
    assert max(rows for (graph, rows, _), _ in seen.items() if graph == "gradient_at") >= 3
    assert max(rows for (graph, rows, _), _ in seen.items() if graph == "logits") > 3
    seen.clear()
    monkeypatch.setenv("QA_MEMORY_BUDGET", "1")
    explain_batch(ITEMS, model=qa, method=method, faithfulness=True)
    assert {rows for _, rows, _ in seen} == {1}  # below one window: one row at a time, and still an answer


def test_answers_and_explanations_do_not_depend_on_the_budget(tiny_model_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    qa = load_model(str(tiny_model_dir))
    for method in METHODS:
        results = {}
        for budget in (1, 4 * qa.footprint.row_bytes(128, backward=True), HUGE):
            monkeypatch.setenv("QA_MEMORY_BUDGET", str(budget))
            results[budget] = explain_batch(ITEMS, model=qa, method=method, faithfulness=True)
        reference = results.pop(HUGE)
        for other in results.values():
            for one, two in zip(reference, other):
                assert not isinstance(one, Exception) and not isinstance(two, Exception)
                assert (two.answer, two.start, two.end, two.no_answer) == \
                    (one.answer, one.start, one.end, one.no_answer)
                np.testing.assert_allclose(two.score, one.score, rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose([t.weight for t in two.tokens], [t.weight for t in one.tokens],
                                           rtol=1e-5, atol=1e-6, err_msg=method)
                np.testing.assert_allclose([w.weight for w in two.words], [w.weight for w in one.words],
                                           rtol=1e-5, atol=1e-6, err_msg=method)
                assert one.faithfulness is not None and two.faithfulness is not None
                np.testing.assert_allclose(
                    [two.faithfulness.comprehensiveness, two.faithfulness.sufficiency, two.faithfulness.original],
                    [one.faithfulness.comprehensiveness, one.faithfulness.sufficiency, one.faithfulness.original],
                    rtol=1e-5, atol=1e-6)
