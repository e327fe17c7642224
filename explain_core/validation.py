"""The rules a question/passage pair must meet, in one place for the engine and the bot.

The bot checks them before queueing (so the user hears at once, ephemerally) and the
engine checks them again (so the CLI, the worker and the Python API are safe on their own).
No TensorFlow here: the bot imports this module.
"""
from __future__ import annotations

import re

from explain_core.errors import InputError
from explain_core.settings import max_passage_chars
from explain_core.wording import count, number

# A letter or a digit in any script (`\w` without the underscore): text without one has
# nothing a tokenizer turns into words (only zero-width, control, combining or punctuation
# characters), and the model fails on it.
_READABLE = re.compile(r"[^\W_]")
# Half of a UTF-16 pair on its own: not a character, cannot be encoded as UTF-8 (what a
# tokenizer needs); it arrives from JSON escapes or from bytes a terminal could not decode.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unreadable(field: str, text: str) -> InputError | None:
    if _LONE_SURROGATE.search(text):
        return InputError(f"invalid_{field}", f"The {field} holds a broken character (half of a UTF-16 pair) "
                                              "and cannot be read: copy it again from its source.")
    if not _READABLE.search(text):
        return InputError(f"unreadable_{field}", f"The {field} has no letters or digits, only invisible, control "
                                                 "or combining characters: write it in words.")
    return None


def question_problem(question: object) -> InputError | None:
    if not isinstance(question, str) or not question.strip():
        return InputError("empty_question", "The question is empty: write a question about the passage.")
    return _unreadable("question", question)


def passage_problem(passage: object) -> InputError | None:
    if not isinstance(passage, str) or not passage.strip():
        return InputError("empty_passage", "The passage has no text: give me the text to find the answer in.")
    limit = max_passage_chars()
    if len(passage) > limit:
        return InputError("passage_too_long", f"The passage has {count(len(passage), 'character')}; "
                                              f"the limit is {number(limit)}. "
                                              "Send just the part that holds the answer.")
    return _unreadable("passage", passage)


def problems(question: object, passage: object) -> dict[str, InputError]:
    """What is wrong, by field ("question", "passage"); empty when the pair can be answered."""
    found = {"question": question_problem(question), "passage": passage_problem(passage)}
    return {name: problem for name, problem in found.items() if problem is not None}


def validate(question: object, passage: object) -> None:
    """Raise the first problem (the question's before the passage's), if any."""
    for problem in problems(question, passage).values():
        raise problem
