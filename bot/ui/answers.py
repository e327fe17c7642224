"""What an answer's buttons need after the answer is posted, and a person's recent questions.

A click carries only the answer's tag (`bot.outcome.replies.tag` of its job key: short, and no Slack
ids in a button), so the delivery keeps the rest under `Keys.answer(tag)` for as long as the
thread's document (QA_DOC_CACHE_TTL_S): the question, where the thread and its document are,
the model, method and confidence (a vote's record), the top answers ("Other answers") and
the models the worker compares with. Not the passage: "Explain another way" reads the thread's
document again, with the clicker's rights (`Documents.for_thread`); only the top answers'
sentences are kept, which "Other answers" shows (to anyone for a public document, and only by
its asker for a passage given privately).

`Recent` lists a person's latest questions for their App Home, newest first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from explain_core.codec import dumps, loads, to_object
from explain_core.errors import SchemaError
from explain_core.present.summary import Alternative
from explain_core.queue import JobResult, Keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerRecord:
    """One posted answer, as its buttons see it. `thread_ts` is the thread the answer lives in
    (follow-ups go there), `doc_ts` the message whose document the question was about."""

    tag: str
    key: str
    team: str
    channel: str
    thread_ts: str
    doc_ts: str
    question: str
    asker: str
    model: str
    method: str
    score: float
    no_answer: bool
    alternatives: list[Alternative] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, tag: str, result: JobResult, thread_ts: str) -> AnswerRecord | None:
        """The record of a one-model answer (a comparison's reply has no buttons); None without one."""
        reply_to = result.reply_to
        if not (result.ok and len(result.answers) == 1 and reply_to.channel and reply_to.user):
            return None
        answer = result.answers[0]
        return cls(tag=tag, key=result.key, team=reply_to.team or "", channel=reply_to.channel,
                   thread_ts=thread_ts, doc_ts=reply_to.doc_ts or thread_ts, question=reply_to.question or "",
                   asker=reply_to.user, model=answer.model, method=answer.method, score=answer.confidence,
                   no_answer=answer.no_answer, alternatives=answer.alternatives, offers=result.offers)


class Answers:
    """The answer records of one namespace, kept `ttl_s` (the thread documents' TTL)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self._redis = client
        self._keys = keys
        self._ttl_s = ttl_s

    def keep(self, record: AnswerRecord) -> None:
        self._redis.set(self._keys.answer(record.tag), dumps(to_object(record)), ex=self._ttl_s)

    def get(self, tag: str) -> AnswerRecord | None:
        """The record, or None once it has expired (or for a tag that never was one). Raises RedisError."""
        data = self._redis.get(self._keys.answer(tag))
        if data is None:
            return None
        try:
            return loads(AnswerRecord, data, "answer record")
        except SchemaError as exc:
            log.error("answer record %s is unreadable: %s", tag, exc)
            return None


@dataclass(frozen=True)
class Asked:
    """A question on a person's App Home: what, where (the placeholder that becomes the answer), when."""

    key: str
    question: str
    channel: str
    ts: str
    at: float


class Recent:
    """A person's latest questions (`Keys.RECENT_KEPT`), kept as long as thread documents."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self._redis = client
        self._keys = keys
        self._ttl_s = ttl_s

    def add(self, team: str, user: str, asked: Asked) -> None:
        key = self._keys.recent(team, user)
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(key, dumps(to_object(asked)))
        pipe.ltrim(key, 0, Keys.RECENT_KEPT - 1)
        pipe.expire(key, self._ttl_s)
        pipe.execute()

    def of(self, team: str, user: str) -> list[Asked]:
        """Newest first. Raises RedisError."""
        out = []
        for item in self._redis.lrange(self._keys.recent(team, user), 0, Keys.RECENT_KEPT - 1):
            try:
                out.append(loads(Asked, item, "recent question"))
            except SchemaError:
                continue
        return out
