"""The job and result messages that travel through Redis, as versioned JSON.

JSON rather than pickle because the bot and the worker are different programs (and may be
different versions during a rolling deploy): a message must never be able to run code in
its reader, and a reader must be able to say "I don't know this version" instead of
crashing. Readers ignore fields they do not know, so version 1 can grow optional fields;
a change that old readers would misread bumps `SCHEMA_VERSION`.

JSON is written ASCII-only: text from chat may hold lone surrogates, which UTF-8 (and so
Redis' client) cannot encode but JSON escapes can carry.

No TensorFlow and no Redis here: the bot builds jobs and reads results with this module.
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


class SchemaError(ValueError):
    """A message that is not valid JSON, lacks a field, or has a version this code cannot read."""


def _load(text: str | bytes, kind: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{kind} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{kind} is not a JSON object")
    if data.get("v") != SCHEMA_VERSION:
        raise SchemaError(f"{kind} has schema version {data.get('v')!r}; this code reads {SCHEMA_VERSION}")
    return data


@dataclass(frozen=True)
class JobOptions:
    """How to answer: the saliency method, the model (None = the worker's default), and
    `compare` to answer with every model the worker offers (its `QA_MODELS`)."""

    method: str = "vanilla"
    model: str | None = None
    compare: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobOptions":
        return cls(method=str(data.get("method", "vanilla")), model=data.get("model"),
                   compare=bool(data.get("compare", False)))


@dataclass(frozen=True)
class Job:
    """One question about one passage, as the worker receives it.

    The passage is either inline (`passage`) or, when large, stored once under its own
    Redis key (`passage_ref`) so that the stream entries stay small and a document asked
    about several times is held once. `reply_to` is the caller's, passed back untouched.
    `enqueued_at` (Unix seconds) lets the worker measure queueing time.
    """

    key: str
    question: str
    options: JobOptions
    reply_to: dict[str, Any]
    enqueued_at: float
    passage: str | None = None
    passage_ref: str | None = None

    def to_json(self) -> str:
        return json.dumps({"v": SCHEMA_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Job":
        data = _load(text, "job")
        if (data.get("passage") is None) == (data.get("passage_ref") is None):
            raise SchemaError("job needs exactly one of passage and passage_ref")
        try:
            return cls(key=str(data["key"]), question=str(data["question"]),
                       options=JobOptions.from_dict(data.get("options") or {}),
                       reply_to=dict(data.get("reply_to") or {}), enqueued_at=float(data.get("enqueued_at", 0.0)),
                       passage=data.get("passage"), passage_ref=data.get("passage_ref"))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"job is malformed: {exc!r}") from None


@dataclass(frozen=True)
class JobError:
    """Why a job has no answer: a stable `code` for the bot's logic and a `message` for the user."""

    code: str
    message: str


@dataclass(frozen=True)
class ResultImage:
    """The saliency PNG of one model's answer, with the alt text screen readers get."""

    png: bytes
    alt_text: str
    model: str


@dataclass(frozen=True)
class JobResult:
    """What the worker sends back for one job: answers and pictures, or an error.

    `answers` holds one `AnswerSummary.to_dict()` per model (several for a comparison),
    `images` the matching PNGs. `job_id` is the jobs-stream entry id, for logs.
    PNG bytes travel base64-encoded inside the JSON, so one message is one field.
    """

    key: str
    reply_to: dict[str, Any]
    ok: bool
    answers: list[dict[str, Any]] = field(default_factory=list)
    images: list[ResultImage] = field(default_factory=list)
    error: JobError | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    job_id: str = ""

    @classmethod
    def failure(cls, job_id: str, key: str, reply_to: dict[str, Any], code: str, message: str,
                timings_ms: dict[str, float] | None = None) -> "JobResult":
        return cls(key=key, reply_to=reply_to, ok=False, error=JobError(code, message),
                   timings_ms=timings_ms or {}, job_id=job_id)

    def to_json(self) -> str:
        data = asdict(self)
        data["images"] = [{"png": base64.b64encode(i.png).decode("ascii"), "alt_text": i.alt_text, "model": i.model}
                          for i in self.images]
        return json.dumps({"v": SCHEMA_VERSION, **data}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobResult":
        data = _load(text, "result")
        try:
            error = data.get("error")
            return cls(
                key=str(data["key"]), reply_to=dict(data.get("reply_to") or {}), ok=bool(data["ok"]),
                answers=list(data.get("answers") or []),
                images=[ResultImage(base64.b64decode(i["png"], validate=True), str(i.get("alt_text", "")),
                                    str(i.get("model", ""))) for i in data.get("images") or []],
                error=JobError(str(error["code"]), str(error["message"])) if error else None,
                timings_ms=dict(data.get("timings_ms") or {}), job_id=str(data.get("job_id", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"result is malformed: {exc!r}") from None


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
        return json.dumps({"v": SCHEMA_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "DeadLetter":
        data = _load(text, "dead letter")
        try:
            return cls(job_id=str(data["job_id"]), payload=str(data["payload"]),
                       error=JobError(**data["error"]), attempts=int(data["attempts"]), at=float(data["at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"dead letter is malformed: {exc!r}") from None
