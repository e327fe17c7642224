"""Seeded question/passage pairs for comparing the engine with the transformers pipeline.

Parity bugs hide at the edges: passages long enough to need several overlapping windows,
answers near window borders, words the vocabulary does not know (accents, rare letters),
runs of spaces, tabs and newlines that shift character offsets, digits and punctuation
that split into many sub-tokens. The pairs are built from the corpus the tiny models'
vocabularies were trained on, plus text the vocabularies have never seen, so both the
common and the awkward paths are taken.
"""
from __future__ import annotations

import random
import re

from tests.support.tiny_models import CORPUS

# Letters the tiny vocabularies never saw (they become [UNK] or byte pieces) next to ones they did.
_ODD_WORDS = (
    "naïve", "façade", "Ærøskøbing", "São", "Zürich", "piñata", "Dvořák", "Łódź", "brûlée",
    "résumé", "Ångström", "Øresund", "señorita", "Müller", "Björk", "coöperate", "smörgåsbord",
)
_QUESTION_WORDS = ("What", "Who", "When", "Where", "Why", "How", "Which", "How many", "In which year")
_SEPARATORS = (" ", " ", " ", " ", "  ", "\n", "\n\n", "\t", "   ", " \n ", "\u00a0")
_PUNCTUATION = (",", ";", ":", " -", " —", "!", "?", "...", " (", ")", '"', "'")


def _sentences() -> list[str]:
    text = CORPUS.read_text(encoding="utf-8")
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def _words(sentences: list[str]) -> list[str]:
    return sorted({w for s in sentences for w in re.findall(r"[\w'’-]+", s)})


def _number(rng: random.Random) -> str:
    forms = (
        lambda: str(rng.randint(0, 99)),
        lambda: str(rng.randint(1000, 2099)),
        lambda: f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}",
        lambda: f"{rng.randint(0, 99)}.{rng.randint(0, 99)}",
        lambda: f"{rng.randint(1, 100)}%",
        lambda: f"${rng.randint(1, 500)}",
        lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    )
    return rng.choice(forms)()


def _word(rng: random.Random, words: list[str], *, numbers_below: float, odd_below: float) -> str:
    """A number when the roll is under `numbers_below`, a foreign word under `odd_below`, else one of `words`."""
    roll = rng.random()
    if roll < numbers_below:
        return _number(rng)
    if roll < odd_below:
        return rng.choice(_ODD_WORDS)
    return rng.choice(words)


def _made_up_sentence(rng: random.Random, words: list[str]) -> str:
    """A sentence of corpus words mixed with numbers, foreign words and punctuation."""
    parts: list[str] = []
    for _ in range(rng.randint(4, 28)):
        parts.append(_word(rng, words, numbers_below=0.08, odd_below=0.13))
        if rng.random() < 0.1:
            parts[-1] += rng.choice(_PUNCTUATION)
    sentence = " ".join(parts)
    return sentence[0].upper() + sentence[1:] + rng.choice((".", ".", ".", "!", "?", "...", ";"))


def _passage(rng: random.Random, sentences: list[str], words: list[str]) -> str:
    """One sentence, a paragraph, or a long document of several thousand characters."""
    roll = rng.random()
    if roll < 0.12:
        target = 1
    elif roll < 0.35:
        target = rng.randint(2, 8)
    else:
        # About 1,200 to 4,500 characters: 2 to 8 windows. Longer passages only repeat the
        # window-stitching logic and make the pipeline comparison slower.
        target = rng.randint(12, 40)
    chosen: list[str] = []
    start = rng.randrange(len(sentences))
    for i in range(target):
        if rng.random() < 0.3:
            chosen.append(_made_up_sentence(rng, words))
        elif rng.random() < 0.6:
            chosen.append(sentences[(start + i) % len(sentences)])
        else:
            chosen.append(rng.choice(sentences))
    text = chosen[0]
    for sentence in chosen[1:]:
        sep = " " if rng.random() < 0.7 else rng.choice(_SEPARATORS)
        text += sep + sentence
    if rng.random() < 0.1:
        text = rng.choice(("  ", "\n", " \t")) + text
    if rng.random() < 0.1:
        text += rng.choice(("  ", "\n", "\n\n"))
    return text


def _question(rng: random.Random, passage: str, words: list[str]) -> str:
    """3-20 words, usually echoing words of the passage as a real question would."""
    passage_words = re.findall(r"\S+", passage)
    n = rng.randint(3, 20)
    lead = rng.choice(_QUESTION_WORDS).split()
    body: list[str] = []
    pool = passage_words if rng.random() < 0.8 else words
    while len(lead) + len(body) < n:
        body.append(_word(rng, pool, numbers_below=0.06, odd_below=0.1))
    question = " ".join(lead + body)
    if rng.random() < 0.15:
        question = question.replace(" ", rng.choice(("  ", " \n", "\t")), rng.randint(1, 3))
    question += rng.choice(("?", "?", "?", " ?", "", "?!"))
    if rng.random() < 0.1:
        question = question.lower()
    if rng.random() < 0.05:
        question = " " + question + " "
    return question


def generate_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (question, passage) pairs, the same ones for the same seed."""
    rng = random.Random(seed)
    sentences = _sentences()
    words = _words(sentences)
    pairs = []
    for _ in range(n):
        passage = _passage(rng, sentences, words)
        pairs.append((_question(rng, passage, words), passage))
    return pairs
