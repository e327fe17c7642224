"""Sentence spans and the context window shared by the picture and the summary."""
from __future__ import annotations

import random

import pytest

from explain_core.text import clean, context_window, sentence_spans


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def test_sentences_end_at_terminal_punctuation_not_at_abbreviations_or_initials() -> None:
    text = ('Dr. Smith met Mr. J. R. Doe in the U.S. capital, e.g. near the river. "Was it fun?" '
            "he asked! Yes... it was.\n\nA heading without a stop\nand a line after it")
    assert sentences(text) == [
        "Dr. Smith met Mr. J. R. Doe in the U.S. capital, e.g. near the river.",
        '"Was it fun?"', "he asked!", "Yes...", "it was.",
        "A heading without a stop\nand a line after it",
    ]


def test_cjk_and_arabic_sentence_ends() -> None:
    assert sentences("東京は大きい。大阪も大きい！本当？") == ["東京は大きい。", "大阪も大きい！", "本当？"]
    assert sentences("هل هذا صحيح؟ نعم.") == ["هل هذا صحيح؟", "نعم."]


def test_no_sentences_in_blank_text() -> None:
    assert sentence_spans("") == [] and sentence_spans(" \n\t ") == []


def test_window_grows_by_whole_sentences_within_the_budget() -> None:
    text = " ".join(f"Sentence {i} has exactly six words." for i in range(40))
    start = text.index("Sentence 20")
    window = context_window(text, start, start + 11, max_words=40, max_chars=10_000)
    shown = text[window.start:window.end]
    assert shown.startswith("Sentence") and shown.endswith(".")
    assert len(shown.split()) == 36  # six whole sentences; a seventh would exceed 40 words
    assert "Sentence 20 " in shown
    assert text[window.sentence_start:window.sentence_end] == "Sentence 20 has exactly six words."


def test_window_stays_inside_the_explained_part() -> None:
    text = " ".join(f"Sentence {i} has exactly six words." for i in range(40))
    start = text.index("Sentence 20")
    lo = text.index("Sentence 19")
    window = context_window(text, start, start + 11, max_words=60, max_chars=10_000, lo=lo,
                            hi=len(text))
    assert window.start == lo


def test_window_without_growth_is_the_answer_sentence() -> None:
    text = "One two three. Four five six. Seven eight nine."
    window = context_window(text, 15, 19, max_words=100, max_chars=1000, grow=False)
    assert text[window.start:window.end] == "Four five six."


def test_window_never_cuts_the_answer_and_respects_the_budget() -> None:
    rng = random.Random(7)
    vocabulary = ["a", "bb", "ccc", "dddd", "e.", "f!", "g?", "x" * 300, "\n\n", "Mr."]
    for _ in range(300):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 400)))
        start = rng.randrange(len(text))
        end = min(len(text), start + rng.randint(0, 40))
        window = context_window(text, start, end, max_words=50, max_chars=400)
        assert window.start <= start <= end <= window.end
        if end - start < 400:
            assert window.end - window.start <= 400
            assert len(text[window.start:window.end].split()) <= max(50, len(text[start:end].split()) + 2)


def test_a_huge_token_next_to_the_answer_is_cut_not_shown_whole() -> None:
    text = "Start. " + "x" * 5000 + " the answer is here " + "y" * 5000 + " end."
    start = text.index("answer")
    window = context_window(text, start, start + 6, max_words=170, max_chars=1100)
    shown = text[window.start:window.end]
    assert "the answer is here" in shown
    assert 0 < shown.count("x") <= 120 and 0 < shown.count("y") <= 120


@pytest.mark.parametrize(("raw", "drawn"), [
    ("zero\u200bwidth", "zerowidth"), ("bell\x07", "bell"), ("\u202eRLO\u202c", "RLO"),
    ("lone \ud800", "lone \ufffd"), ("naïve", "naïve"),
])
def test_clean_removes_invisible_characters(raw: str, drawn: str) -> None:
    assert clean(raw) == drawn
