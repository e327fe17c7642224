"""Sentence spans and the answer excerpt shared by the picture and the summary."""
from __future__ import annotations

import random

import pytest

from explain_core.present.excerpts import clean, excerpt, sentence_spans


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


def test_excerpt_grows_by_whole_sentences_within_the_budget() -> None:
    text = " ".join(f"Sentence {i} has exactly six words." for i in range(40))
    start = text.index("Sentence 20")
    part = excerpt(text, start, start + 11, max_words=40, max_chars=10_000)
    shown = text[part.start:part.end]
    assert shown.startswith("Sentence") and shown.endswith(".")
    assert len(shown.split()) == 36  # six whole sentences; a seventh would exceed 40 words
    assert "Sentence 20 " in shown
    assert text[part.sentence_start:part.sentence_end] == "Sentence 20 has exactly six words."


def test_excerpt_stays_inside_the_explained_part() -> None:
    text = " ".join(f"Sentence {i} has exactly six words." for i in range(40))
    start = text.index("Sentence 20")
    lo = text.index("Sentence 19")
    part = excerpt(text, start, start + 11, max_words=60, max_chars=10_000, lo=lo,
                            hi=len(text))
    assert part.start == lo


def test_excerpt_without_growth_is_the_answer_sentence() -> None:
    text = "One two three. Four five six. Seven eight nine."
    part = excerpt(text, 15, 19, max_words=100, max_chars=1000, grow=False)
    assert text[part.start:part.end] == "Four five six."


def test_excerpt_never_cuts_the_answer_and_respects_the_budget() -> None:
    rng = random.Random(7)
    vocabulary = ["a", "bb", "ccc", "dddd", "e.", "f!", "g?", "x" * 300, "\n\n", "Mr."]
    for _ in range(300):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 400)))
        start = rng.randrange(len(text))
        end = min(len(text), start + rng.randint(0, 40))
        part = excerpt(text, start, end, max_words=50, max_chars=400)
        assert part.start <= start <= end <= part.end
        if end - start < 400:
            assert part.end - part.start <= 400
            assert len(text[part.start:part.end].split()) <= max(50, len(text[start:end].split()) + 2)


def test_a_huge_token_next_to_the_answer_is_cut_not_shown_whole() -> None:
    text = "Start. " + "x" * 5000 + " the answer is here " + "y" * 5000 + " end."
    start = text.index("answer")
    part = excerpt(text, start, start + 6, max_words=170, max_chars=1100)
    shown = text[part.start:part.end]
    assert "the answer is here" in shown
    assert 0 < shown.count("x") <= 120 and 0 < shown.count("y") <= 120


@pytest.mark.parametrize(("raw", "drawn"), [
    ("zero\u200bwidth", "zerowidth"), ("bell\x07", "bell"), ("\u202eRLO\u202c", "RLO"),
    ("lone \ud800", "lone \ufffd"), ("naïve", "naïve"),
])
def test_clean_removes_invisible_characters(raw: str, drawn: str) -> None:
    assert clean(raw) == drawn
