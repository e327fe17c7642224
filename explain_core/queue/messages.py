"""The messages that travel through Redis (jobs, results, dead letters), as typed, versioned JSON.

JSON rather than pickle because the bot and the worker are different programs (and may be
different versions during a rolling deploy): a message must never be able to run code in
its reader, and a reader must be able to say "I don't know this version" instead of
crashing. Readers ignore fields they do not know (`explain_core.codec`), so version 1 can
grow optional fields; a change that old readers would misread bumps `SCHEMA_VERSION`.

No TensorFlow and no Redis here: the bot builds jobs and reads results with this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from explain_core import defaults
from explain_core.codec import dumps, from_object, to_object
from explain_core.errors import SchemaError
from explain_core.present.summary import AnswerSummary

SCHEMA_VERSION = 1

M = TypeVar("M")


def _encode(message: Any) -> str:
    return dumps({"v": SCHEMA_VERSION, **to_object(message)})


def _decode(cls: type[M], text: str | bytes, what: str) -> M:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{what} is not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise SchemaError(f"{what} has schema version {data.get('v')!r}; this code reads {SCHEMA_VERSION}")
    return from_object(cls, data, what)


@dataclass(frozen=True)
class ReplyTo:
    """Where and to whom the answer goes; the bot writes it, the worker passes it back untouched.

    `thread_ts` None means "start a thread under the placeholder"; `question` is the question
    as the reply quotes it (shortened); `asker` is set when the reply names who asked.
    `ts` is the placeholder the bot posted before queueing: the answer always replaces it.
    `response_url` (a slash command's or a message shortcut's) is the way left to reach the
    asker when the bot cannot post in the conversation; Slack accepts it for 30 minutes.
    `team`, `enterprise_id` and `is_enterprise_install` name the installation whose token the
    reply is posted with (a deployment may serve many workspaces; Enterprise Grid org-wide
    installs are the org's). All are optional so that messages written before them still read.
    """

    team: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    user: str | None = None
    question: str | None = None
    asker: str | None = None
    ts: str | None = None
    response_url: str | None = None
    doc_ts: str | None = None
    enterprise_id: str | None = None
    is_enterprise_install: bool = False


@dataclass(frozen=True)
class JobOptions:
    """How to answer: the saliency method, the model (None = the worker's default), and
    `compare` to answer with every model the worker offers (its `QA_MODELS`)."""

    method: str = defaults.METHOD
    model: str | None = None
    compare: bool = False


@dataclass(frozen=True)
class Job:
    """One question about one passage, as the worker receives it.

    The passage is either inline (`passage`) or, when large, stored once under its own
    Redis key (`passage_ref`) so that the stream entries stay small and a document asked
    about several times is held once. `enqueued_at` (Unix seconds) lets the worker measure
    queueing time.
    """

    key: str
    question: str
    options: JobOptions = field(default_factory=JobOptions)
    reply_to: ReplyTo = field(default_factory=ReplyTo)
    enqueued_at: float = 0.0
    passage: str | None = None
    passage_ref: str | None = None

    def __post_init__(self) -> None:
        if (self.passage is None) == (self.passage_ref is None):
            raise ValueError("a job needs exactly one of passage and passage_ref")

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        return _decode(cls, text, "job")


@dataclass(frozen=True)
class JobError:
    """Why a job has no answer: a stable `code` for the bot's logic and a `message` for the user."""

    code: str
    message: str


@dataclass(frozen=True)
class ResultImage:
    """The saliency PNG of one model's answer, with the alt text screen readers get.
    The PNG travels base64-encoded inside the JSON, so one message is one stream field."""

    png: bytes
    alt_text: str
    model: str


@dataclass(frozen=True)
class JobResult:
    """What the worker sends back for one job: answers and pictures, or an error.

    `answers` holds one summary per model (several for a comparison), `images` the matching
    PNGs. `job_id` is the jobs-stream entry id, for logs. `offers` names the models the worker
    compares with (its QA_MODELS), so the reply offers a comparison only where there is one.
    """

    key: str
    reply_to: ReplyTo
    ok: bool
    answers: list[AnswerSummary] = field(default_factory=list)
    images: list[ResultImage] = field(default_factory=list)
    error: JobError | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    job_id: str = ""
    offers: list[str] = field(default_factory=list)

    @classmethod
    def failure(cls, job_id: str, key: str, reply_to: ReplyTo, code: str, message: str,
                timings_ms: dict[str, float] | None = None) -> JobResult:
        return cls(key=key, reply_to=reply_to, ok=False, error=JobError(code, message),
                   timings_ms=timings_ms or {}, job_id=job_id)

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobResult:
        return _decode(cls, text, "result")


@dataclass(frozen=True)
class Progress:
    """Where a job is, as the worker tells it: `running` once it is taken, then `reading`
    `done` of `total` windows of a long passage. Best effort: a lost one costs a stale
    status line, never an answer."""

    key: str
    stage: str
    done: int = 0
    total: int = 0

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> Progress:
        return _decode(cls, text, "progress")


@dataclass(frozen=True)
class WorkerInfo:
    """What a live worker offers, kept with its heartbeat: its default model, the models it
    compares with, and the saliency methods; a front end shows them (the App Home)."""

    model: str
    models: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerInfo:
        return _decode(cls, text, "worker info")


@dataclass(frozen=True)
class DeadLetter:
    """A job given up on, kept for an operator: its raw payload (it may not even parse),
    why it failed, and how many deliveries it had."""

    job_id: str
    payload: str
    error: JobError
    attempts: int
    at: float

    def to_json(self) -> str:
        return _encode(self)

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        return _decode(cls, text, "dead letter")
