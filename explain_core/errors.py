"""Every error the project raises on purpose, in one hierarchy, kept apart from bugs.

    Exception
    ├── Refusal            a question that is not taken or cannot be answered now; `code` is a
    │   │                  stable name for programs, `message` is shown to the person as is
    │   ├── InputError     the input is wrong: fix it and ask again (empty, too long, unknown model)
    │   ├── Busy           the job queue is at its cap: ask again in a few minutes
    │   ├── Limited        this person (or channel) already has its share of questions waiting
    │   └── Unavailable    the job queue (Redis) cannot be reached: ask again later
    ├── SchemaError        a queue message that is not JSON, lacks a field or has an unknown version
    └── ConfigError        a setting (environment variable) is missing or malformed

Why refusals share a base: every front end does the same with them (the CLI prints the
message and exits 2, the worker turns it into an error result, the bot an ephemeral message),
while anything else is a bug, logged with its trace and never shown to a user.
"""
from __future__ import annotations


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
        super().__init__("queue_full", f"the service is busy ({ahead:,} questions waiting); "
                                       "try again in a few minutes")
        self.ahead = ahead


class Limited(Refusal):
    """One asker (code "user_limit"), one channel ("channel_limit") or one workspace
    ("team_limit") already has `limit` questions unanswered. Refused before anything is posted,
    so a flood costs the channel nothing and never sits in front of other people's questions."""

    def __init__(self, code: str, limit: int) -> None:
        who = {"user_limit": "you have", "channel_limit": "this channel has"}.get(code, "this workspace has")
        super().__init__(code, f"{who} {limit} question{'s' if limit != 1 else ''} waiting for an answer "
                               "already; ask again when one of them is answered")
        self.limit = limit


class Unavailable(Refusal):
    """The job queue cannot be reached, so a question could not be taken (nothing was queued)."""

    def __init__(self) -> None:
        super().__init__("redis_unavailable",
                         "I can't reach my job queue right now, so I couldn't take your question. "
                         "Try again in a minute; if it keeps happening, tell whoever runs this bot.")


class SchemaError(ValueError):
    """A message that is not valid JSON, lacks a field, or has a version this code cannot read."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and how to fix it."""
