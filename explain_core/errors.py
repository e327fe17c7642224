"""Every error the project raises on purpose, in one hierarchy, kept apart from bugs.

    Exception
    ├── Refusal            a question that is not taken or cannot be answered now; `code` is a
    │   │                  stable name for programs, `message` is shown to the person as is
    │   ├── InputError     the input is wrong: fix it and ask again (empty, too long, unknown model)
    │   ├── Busy           the job queue is at its cap: ask again in a few minutes
    │   ├── Limited        this person (or channel) already has its share of questions waiting
    │   └── Unavailable    the job queue (Redis) cannot be reached, or refuses writes: ask again later
    ├── SchemaError        a queue message that is not JSON, lacks a field or has an unknown version
    └── ConfigError        a setting (environment variable) is missing or malformed

Why refusals share a base: every front end does the same with them (the CLI prints the
message and exits 2, the worker turns it into an error result, the bot an ephemeral message),
while anything else is a bug, logged with its trace and never shown to a user.
"""
from __future__ import annotations

from explain_core.wording import count


class Refusal(Exception):
    """A question the service will not take or cannot answer now, said plainly.

    `code` ("empty_question", "queue_full", ...) lets a front end choose its wording without
    parsing English; `message` is written for the person who asked.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InputError(Refusal, ValueError):
    """Bad input from the user (or the caller of the Python API): the message says what to fix."""


class Busy(Refusal):
    """The backlog is at its cap; `ahead` questions are waiting. Refused rather than queued,
    because a capped stream would otherwise drop the oldest questions silently."""

    def __init__(self, ahead: int) -> None:
        super().__init__("queue_full", f"the service is busy ({count(ahead, 'question')} waiting); "
                                       "try again in a few minutes")
        self.ahead = ahead


class Limited(Refusal):
    """One asker (code "user_limit"), one channel ("channel_limit") or one workspace
    ("team_limit") already has `limit` questions unanswered. Refused before anything is posted,
    so a flood costs the channel nothing and never sits in front of other people's questions."""

    def __init__(self, code: str, limit: int) -> None:
        who = {"user_limit": "you have", "channel_limit": "this channel has"}.get(code, "this workspace has")
        super().__init__(code, f"{who} {count(limit, 'question')} waiting for an answer "
                               "already; ask again when one of them is answered")
        self.limit = limit


class Unavailable(Refusal):
    """The job queue (Redis) cannot take a question now, so it was not taken (nothing was queued).

    `code` says why, in words that are true for the person: out of reach, or reached but refusing
    writes (out of memory under `noeviction`, a read-only replica, a disk it cannot write to). A
    refusal is not an outage, and "I can't reach" would send an operator to the wrong place.
    `explain_core.queue.connect.unavailable` picks the code from Redis' error."""

    WHY = {
        "redis_unavailable": "I can't reach my job queue right now",
        "redis_full": "My job queue is full and refuses new questions right now",
        "redis_read_only": "My job queue is read-only right now (it is switching to another server, or is set up "
                           "wrong)",
        "redis_cannot_save": "My job queue cannot write to its disk and refuses new questions right now",
        "redis_refused": "My job queue refused your question with an error",
    }

    def __init__(self, code: str = "redis_unavailable") -> None:
        super().__init__(code, f"{self.WHY[code]}, so I couldn't take your question. Try again in a few minutes; "
                               "if it keeps happening, tell whoever runs this bot.")


class SchemaError(ValueError):
    """A message that is not valid JSON, lacks a field, or has a version this code cannot read."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and how to fix it."""
