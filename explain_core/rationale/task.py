"""Generated questions whose answer is determined by one cue word (a colour).

"The red box holds a key. A coin is in the blue box. ..." / "What does the blue box hold?"
Every sentence of a passage names the same container and a different colour and item, so
the colour in the question is the only word that tells the sentences apart. Sentence and
question templates vary the word order, so position alone never gives the answer.
A seeded generator gives the training set and, with other seeds, held-out questions.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

COLORS = ("red", "blue", "green", "yellow", "black", "white", "brown", "pink", "purple", "gray", "silver", "golden")
CONTAINERS = ("box", "bag", "jar", "chest", "basket", "drawer", "cup", "tin")
# No item starts with a vowel, so every template can say "a".
ITEMS = ("key", "coin", "ring", "map", "pen", "shell", "stone", "button", "card", "bell", "book", "spoon",
         "candle", "letter", "feather", "marble", "ticket", "whistle", "needle", "comb")
SENTENCES = (
    "The {color} {container} holds a {item}.",
    "A {item} is in the {color} {container}.",
    "Inside the {color} {container} there is a {item}.",
    "The {color} {container} contains a {item}.",
    "You will find a {item} in the {color} {container}.",
)
QUESTIONS = (
    "What does the {color} {container} hold?",
    "What is in the {color} {container}?",
    "Which thing is inside the {color} {container}?",
    "What can you find in the {color} {container}?",
)
# Sentences that name no colour: words a correct model must learn to ignore.
FILLERS = (
    "The room is quiet.",
    "Nobody has opened them today.",
    "The window is open and the light is dim.",
    "Some dust lies on the shelf.",
    "A clock ticks on the wall.",
)
MIN_ENTITIES, MAX_ENTITIES = 3, 5
MAX_FILLERS = 2


@dataclass(frozen=True)
class Example:
    """One generated question; `cue` is the colour the answer depends on."""

    question: str
    passage: str
    answer: str
    answer_start: int
    cue: str


def make_example(rng: random.Random) -> Example:
    """One passage of 3-5 coloured containers (plus fillers) and a question about one of them."""
    count = rng.randint(MIN_ENTITIES, MAX_ENTITIES)
    colors = rng.sample(COLORS, count)
    items = rng.sample(ITEMS, count)
    container = rng.choice(CONTAINERS)
    sentences = [rng.choice(SENTENCES).format(color=c, container=container, item=i) for c, i in zip(colors, items)]
    for filler in rng.sample(FILLERS, rng.randint(0, MAX_FILLERS)):
        sentences.insert(rng.randint(0, len(sentences)), filler)
    passage = " ".join(sentences)
    target = rng.randrange(count)
    cue, answer = colors[target], items[target]
    sentence = next(s for s in sentences if f" {cue} " in f" {s} ")
    offset = passage.index(sentence)
    answer_start = offset + re.search(rf"\b{answer}\b", sentence).start()
    question = rng.choice(QUESTIONS).format(color=cue, container=container)
    return Example(question, passage, answer, answer_start, cue)


def generate(count: int, seed: int) -> list[Example]:
    """`count` examples from a generator seeded with `seed` (training uses seed 0)."""
    rng = random.Random(seed)
    return [make_example(rng) for _ in range(count)]


def vocabulary() -> list[str]:
    """Every word and punctuation mark the templates can produce, sorted: the model's vocab."""
    texts = [*SENTENCES, *QUESTIONS, *FILLERS]
    words = {w.lower() for t in texts for w in re.findall(r"\w+|[^\w\s]", re.sub(r"\{\w+\}", " ", t))}
    words |= set(COLORS) | set(CONTAINERS) | set(ITEMS)
    return sorted(words)
