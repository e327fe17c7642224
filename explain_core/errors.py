"""Errors a user can cause, kept apart from bugs so every front end can show them plainly.

The CLI prints `InputError` as one line and exits 2; the worker turns it into a result
the bot shows as an ephemeral message. Anything else is a bug and is logged with its trace.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input from the user: the message is meant to be shown to them as is.

    `code` is a stable machine-readable name ("empty_question", "passage_too_long", ...)
    so the bot can choose its wording without parsing English.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
