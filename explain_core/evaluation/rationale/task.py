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


@dataclass(frozen=True)
class Task:
    """Which passages to generate: how many containers and fillers, which templates.

    `FULL` is the task the model is evaluated on; `WARMUP` is the first lesson of the
    training curriculum (see train.py), the same task with two containers and one wording.
    """

    min_entities: int = 3
    max_entities: int = 5
    max_fillers: int = 2
    sentences: tuple[str, ...] = SENTENCES
    questions: tuple[str, ...] = QUESTIONS


FULL = Task()
WARMUP = Task(2, 2, 0, SENTENCES[:1], QUESTIONS[:1])


@dataclass(frozen=True)
class Example:
    """One generated question; `cue` is the colour the answer depends on."""

    question: str
    passage: str
    answer: str
    answer_start: int
    cue: str


def make_passage(rng: random.Random, task: Task = FULL) -> list[Example]:
    """A passage of 3-5 coloured containers (plus fillers) and one question about each of them.

    Training on all of them together shows the model the same passage with different
    answers, so only the colour in the question can explain the difference.
    """
    count = rng.randint(task.min_entities, task.max_entities)
    colors = rng.sample(COLORS, count)
    items = rng.sample(ITEMS, count)
    container = rng.choice(CONTAINERS)
    sentences = [rng.choice(task.sentences).format(color=c, container=container, item=i) for c, i in zip(colors, items)]
    for filler in rng.sample(FILLERS, rng.randint(0, task.max_fillers)):
        sentences.insert(rng.randint(0, len(sentences)), filler)
    passage = " ".join(sentences)
    examples = []
    for cue, answer in zip(colors, items):
        sentence = next(s for s in sentences if f" {cue} " in f" {s} ")
        found = re.search(rf"\b{answer}\b", sentence)
        assert found is not None  # every sentence is built around its answer word
        answer_start = passage.index(sentence) + found.start()
        question = rng.choice(task.questions).format(color=cue, container=container)
        examples.append(Example(question, passage, answer, answer_start, cue))
    return examples


def generate(count: int, seed: int, task: Task = FULL) -> list[Example]:
    """`count` examples, one random question per passage, from a generator seeded with `seed`."""
    rng = random.Random(seed)
    return [rng.choice(make_passage(rng, task)) for _ in range(count)]


def generate_all(passages: int, seed: int, task: Task = FULL) -> list[Example]:
    """Every question about each of `passages` passages (the training batches)."""
    rng = random.Random(seed)
    return [example for _ in range(passages) for example in make_passage(rng, task)]


def vocabulary() -> list[str]:
    """Every word and punctuation mark the templates can produce, sorted: the model's vocab."""
    texts = [*SENTENCES, *QUESTIONS, *FILLERS]
    words = {w.lower() for t in texts for w in re.findall(r"\w+|[^\w\s]", re.sub(r"\{\w+\}", " ", t))}
    words |= set(COLORS) | set(CONTAINERS) | set(ITEMS)
    return sorted(words)
