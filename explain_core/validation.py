"""The rules a question/passage pair must meet, in one place for the engine and the bot.

The bot checks them before queueing (so the user hears at once, ephemerally) and the
engine checks them again (so the CLI, the worker and the Python API are safe on their own).
No TensorFlow here: the bot imports this module.
"""
from __future__ import annotations

from explain_core.errors import InputError
from explain_core.settings import max_passage_chars


def question_problem(question: object) -> InputError | None:
    if not isinstance(question, str) or not question.strip():
        return InputError("empty_question", "The question is empty: write a question about the passage.")
    return None


def passage_problem(passage: object) -> InputError | None:
    if not isinstance(passage, str) or not passage.strip():
        return InputError("empty_passage", "The passage has no text: give me the text to find the answer in.")
    limit = max_passage_chars()
    if len(passage) > limit:
        return InputError("passage_too_long", f"The passage has {len(passage):,} characters; the limit is {limit:,}. "
                                              "Send just the part that holds the answer.")
    return None


def problems(question: object, passage: object) -> dict[str, InputError]:
    """What is wrong, by field ("question", "passage"); empty when the pair can be answered."""
    found = {"question": question_problem(question), "passage": passage_problem(passage)}
    return {name: problem for name, problem in found.items() if problem is not None}


def validate(question: object, passage: object) -> None:
    """Raise the first problem (the question's before the passage's), if any."""
    for problem in problems(question, passage).values():
        raise problem
