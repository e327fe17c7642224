"""The input rules shared by the bot, the CLI and the worker: what cannot be answered is
refused up front with a message for the person, never sent to the model to crash on."""
from __future__ import annotations

from pathlib import Path

import pytest

from explain_core.errors import InputError
from explain_core.validation import problems, validate

UNREADABLE = {
    "zero-width only": "\u200b\u200c\u200d\ufeff",
    "control only": "\x00\x01\x07\x1b",
    "combining marks only": "\u0301\u0308\u0327" * 10,
    "punctuation and spaces": " ?!… — ",
}


@pytest.mark.parametrize("text", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_text_without_letters_or_digits_is_refused(text: str) -> None:
    found = problems(text, text)
    assert {name: p.code for name, p in found.items()} == {
        "question": "unreadable_question", "passage": "unreadable_passage"}
    assert "no letters or digits" in found["passage"].message


def test_a_lone_surrogate_is_refused_even_beside_readable_text() -> None:
    with pytest.raises(InputError) as refused:
        validate("Who built it?", "Robert Stevenson built it. \udc9f")
    assert refused.value.code == "invalid_passage" and "broken character" in refused.value.message


@pytest.mark.parametrize("question, passage", [
    ("Où?", "À Paris."), ("何?", "東京です。"), ("Year?", "1810"), ("Who?", "e\u0301 Zoë\u200b lived here"),
])
def test_readable_text_in_any_script_passes(question: str, passage: str) -> None:
    assert problems(question, passage) == {}


def test_the_model_is_never_asked_about_unreadable_input(tiny_model_dir: Path) -> None:
    """Before these rules such passages reached the model, which had no word to read: at best an
    empty answer, at worst (as reported) a crash retried three times. The engine refuses them itself."""
    import explain_core

    for text in UNREADABLE.values():
        with pytest.raises(InputError):
            explain_core.explain("Who built it?", text, model=str(tiny_model_dir))
