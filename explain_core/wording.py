"""How a count is written for people, in one place: "10,000 questions", never "10000" in one
message and "10,000" in the next (the full-queue placeholder and its refusal once disagreed).

Shared by the bot's messages, the errors' and the command line's, so it imports nothing.
"""
from __future__ import annotations


def number(n: int) -> str:
    """`n` with thousands separated by commas, as English readers expect: 10,000."""
    return f"{n:,}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and its noun, singular for exactly one: "1 question", "10,000 questions"."""
    return f"{number(n)} {noun if n == 1 else plural or noun + 's'}"
