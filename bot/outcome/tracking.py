"""The Redis side of "one outcome per question": placeholders being tracked, and who settled each.

Every placeholder the bot posts is tracked until the question has its final outcome:

- in Redis (`Keys.reply` holds where the placeholder is, `Keys.replies` orders the keys by
  deadline), so that any bot process's sweeper finds it, also after a restart of the bot;
- in this process's memory, so that a Redis that lost its data (a restart without
  persistence) is noticed: the memory still lists placeholders Redis no longer knows.

The record is written with SET NX before the job is queued, which also makes it the job
key's owner: a second placeholder for the same key (a Slack retry that got past the
first-delivery guard) sees another placeholder's ts and knows it is the duplicate, while a
repeat of our own write (redis-py retries a command that timed out) sees its own ts.

`Outcomes` is the one claim per job key (SET NX) that decides which final message the asker
sees: the delivered result (the answer, or the worker's message saying why it could not
answer) or what went wrong (the intake's refusal, the sweeper's "lost" or "timed out").
Whoever loses the claim shows nothing, so a late answer never follows a failure message.
Claims carry the name of the outcome, not of a process, so a delivery redelivered after a
crash recognises its own claim and finishes its path. The claim that records an outcome is
also where it is counted (`bot.metrics`) and logged, so each question counts once, in one
process, whoever settles it.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import redis

from bot.metrics import BotMetrics
from explain_core.codec import dumps, loads, to_object
from explain_core.errors import SchemaError
from explain_core.ops import step
from explain_core.queue import Keys, ReplyTo

log = logging.getLogger(__name__)

SNAPSHOT_MAX = 5000  # tracked placeholders read per sweep (the per-user and per-channel limits bound them)


class Outcome(StrEnum):
    """The final outcome of a question, as recorded in `Keys.outcome`."""

    ANSWER = "answer"  # the delivery took it: the answer replaces the placeholder
    FAILED = "failed"  # the delivery took it: the worker's message saying why it could not answer does
    REFUSED = "refused"  # the queue refused the job after the placeholder was posted (busy, limits)
    LOST = "lost"  # Redis has no trace of a job that was queued (it lost its data)
    UNQUEUED = "unqueued"  # queueing failed on a Redis error and Redis does not know the job
    TIMEOUT = "timeout"  # no answer within the deadline
    CRASHED = "crashed"  # the bot process taking the question died before its placeholder was recorded


_KINDS = {Outcome.ANSWER: "answered", Outcome.FAILED: "told_why", Outcome.REFUSED: "refused", Outcome.LOST: "lost",
          Outcome.UNQUEUED: "lost", Outcome.TIMEOUT: "deadline_passed", Outcome.CRASHED: "lost"}


def counted_as(outcome: Outcome, reason: str = "") -> str:
    """The outcome as an operator counts it (`qa_bot_outcomes_total{outcome}`), from the person's
    side: an answer that found nothing in the passage is `no_answer`."""
    return "no_answer" if outcome is Outcome.ANSWER and reason == "no_answer" else _KINDS[outcome]


class Local(StrEnum):
    """What this process knows about a tracked placeholder that Redis may not."""

    SUBMITTING = "submitting"  # the intake is queueing the job: not lost, whatever Redis says yet
    WAITING = "waiting"  # the intake is done: the delivery or the sweeper gives the final state
    UNCERTAIN = "uncertain"  # enqueue failed on a Redis error: the job may or may not exist
    SETTLED = "settled"  # the sweeper told the asker while Redis was unreachable; claim pending


@dataclass(frozen=True)
class Placeholder:
    """A posted placeholder: where it is, who asked, and by when it must reach a final state."""

    key: str
    team: str | None
    channel: str
    ts: str
    user: str
    question: str
    posted_at: float
    deadline: float
    thread_ts: str | None = None
    asker: str | None = None
    response_url: str | None = None
    doc_ts: str | None = None
    asked_at: float = 0.0  # when the question was read (wall clock), for the time to its final message
    enterprise_id: str | None = None
    is_enterprise_install: bool = False

    def reply_to(self) -> ReplyTo:
        return ReplyTo(team=self.team, channel=self.channel, thread_ts=self.thread_ts, user=self.user,
                       question=self.question, asker=self.asker, ts=self.ts, response_url=self.response_url,
                       doc_ts=self.doc_ts, enterprise_id=self.enterprise_id,
                       is_enterprise_install=self.is_enterprise_install)

    def to_json(self) -> str:
        return dumps(to_object(self))

    @classmethod
    def from_json(cls, text: str) -> Placeholder:
        return loads(cls, text, "placeholder record")


@dataclass
class _Entry:
    placeholder: Placeholder
    state: Local
    reason: Outcome | None = None  # for SETTLED: the outcome still to be claimed in Redis


_CLAIMED_BY = "|"  # an outcome's value, then the token of the claim that recorded it


class Outcomes:
    """The one final outcome of each question (see the module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys, metrics: BotMetrics) -> None:
        self._redis = client
        self._keys = keys
        self._metrics = metrics

    def claim(self, key: str, outcome: Outcome, reason: str = "") -> Outcome | None:
        """Record `outcome` unless one is recorded; return the outcome recorded now. `reason`
        (a code: why it was refused, why the worker could not answer, `no_answer`) goes to the
        count and the log line of the claim that records it.

        One command (SET NX GET) whose value carries a token of this call, so that a reply lost
        after Redis ran it is not taken for another claim's (the outcome would go uncounted): the
        claim is read back once, and is this call's if it holds the token. None only for a value
        this code does not know (a newer release's)."""
        mine = f"{outcome.value}{_CLAIMED_BY}{uuid.uuid4().hex[:12]}"
        try:
            previous = cast("str | None", self._redis.set(self._keys.outcome(key), mine, nx=True,
                                                          ex=Keys.REPLY_TTL_S, get=True))
        except redis.ConnectionError:
            previous = self._redis.get(self._keys.outcome(key))
            if previous is None:
                raise  # the SET never ran: the caller tries again later
        if previous is not None and previous != mine:
            return _outcome(previous)
        kind = counted_as(outcome, reason)
        if kind == "lost":
            reason = outcome.value  # lost (Redis forgot the job) or unqueued (never taken)
        self._metrics.settle(kind, reason if kind in ("told_why", "refused", "lost") else "")
        step(log, "outcome", key, outcome=kind, reason=reason or "-")
        return outcome

    def get_many(self, keys: list[str]) -> list[Outcome | None]:
        if not keys:
            return []
        return [None if v is None else _outcome(v) for v in self._redis.mget([self._keys.outcome(k) for k in keys])]


def _outcome(value: str) -> Outcome | None:
    try:
        return Outcome(value.partition(_CLAIMED_BY)[0])
    except ValueError:
        return None


class Tracker:
    """Placeholders awaiting their final state, in Redis and in memory (see the module doc).

    Thread-safe: the intake, the delivery and the sweeper of one process share it.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._lock = threading.Lock()
        self._local: dict[str, _Entry] = {}
        self._unclosed: set[str] = set()  # journal entries `expected` could not drop (Redis unreachable)

    # -- the intake ------------------------------------------------------------------------
    def begin(self, placeholder: Placeholder) -> None:
        """Remember a placeholder in memory before anything can fail, so it is never orphaned."""
        with self._lock:
            self._local[placeholder.key] = _Entry(placeholder, Local.SUBMITTING)

    def owner(self, key: str) -> Placeholder | None:
        """The placeholder recorded for `key`, if any (an unreadable record counts as none). Raises RedisError."""
        record = cast("str | None", self._redis.get(self._keys.reply(key)))
        try:
            return None if record is None else Placeholder.from_json(record)
        except SchemaError:
            return None

    def track(self, placeholder: Placeholder) -> Placeholder | None:
        """Record the placeholder in Redis as its job key's owner. Returns the other placeholder
        if one already owns the key (this one is a duplicate), else None. Raises RedisError."""
        previous = cast("str | None", self._redis.set(self._keys.reply(placeholder.key), placeholder.to_json(),
                                                      nx=True, ex=Keys.REPLY_TTL_S, get=True))
        if previous is not None:
            try:
                owner = Placeholder.from_json(previous)
            except SchemaError:  # nothing this release wrote: take the key over
                log.error("replacing an unreadable placeholder record for %s", placeholder.key)
                self._redis.set(self._keys.reply(placeholder.key), placeholder.to_json(), ex=Keys.REPLY_TTL_S)
            else:
                if (owner.channel, owner.ts) != (placeholder.channel, placeholder.ts):
                    return owner
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._keys.replies, {placeholder.key: placeholder.deadline})
        pipe.expire(self._keys.replies, Keys.REPLY_TTL_S)  # an idle deployment's list goes away
        pipe.execute()
        return None

    # -- the intake journal: between Slack's acknowledgement and the placeholder's record -------
    def expect(self, pending: Placeholder) -> None:
        """Journal a question whose placeholder is about to be posted (`pending.ts` empty, its
        `deadline` when the sweeper may decide its process died). Slack has been acknowledged,
        so if this process dies before `track`, only this record says the question exists.
        Raises RedisError."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._keys.intake(pending.key), pending.to_json(), ex=Keys.REPLY_TTL_S)
        pipe.zadd(self._keys.intakes, {pending.key: pending.deadline})
        pipe.expire(self._keys.intakes, Keys.REPLY_TTL_S)
        pipe.execute()

    def expected(self, key: str) -> None:
        """The intake of `key` is over (its placeholder recorded, or the asker told): drop its
        journal entry. A Redis error is logged: the sweeper drops it later (a recorded placeholder)
        or, finding nothing recorded, tells the asker it was lost."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(self._keys.intakes, key)
        pipe.delete(self._keys.intake(key))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not close the intake of %s (%s); retried once Redis answers", key, exc)
            with self._lock:
                self._unclosed.add(key)
        else:
            with self._lock:
                self._unclosed.discard(key)

    def close_unclosed(self) -> None:
        """Drop the journal entries this process could not drop (its asker was told meanwhile, e.g.
        "couldn't take it" while Redis was cut off), before any sweeper takes them for lost.
        Raises RedisError (they stay to retry)."""
        with self._lock:
            keys = sorted(self._unclosed)
        for key in keys:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(self._keys.intakes, key)
            pipe.delete(self._keys.intake(key))
            pipe.execute()
            with self._lock:
                self._unclosed.discard(key)

    def abandoned(self, now: float) -> list[Placeholder]:
        """Journalled questions past their grace whose placeholder was never recorded: the process
        taking them died (or stalled past the grace) after acknowledging Slack. Entries whose
        placeholder was recorded are the tracker's now and are dropped here. Raises RedisError."""
        keys = cast("list[str]", self._redis.zrangebyscore(self._keys.intakes, "-inf", now, start=0,
                                                           num=SNAPSHOT_MAX))
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(self._keys.reply(key))
            pipe.get(self._keys.intake(key))
        found = pipe.execute()
        lost = []
        for key, recorded, record in zip(keys, found[::2], found[1::2]):
            if recorded or record is None:
                self.expected(key)
                continue
            try:
                lost.append(Placeholder.from_json(record))
            except SchemaError:
                log.error("dropping an unreadable intake record for %s", key)
                self.expected(key)
        return lost

    def mark(self, key: str, state: Local, reason: Outcome | None = None) -> None:
        with self._lock:
            entry = self._local.get(key)
            if entry is not None:
                entry.state, entry.reason = state, reason

    # -- everyone --------------------------------------------------------------------------
    def state(self, key: str) -> Local | None:
        with self._lock:
            entry = self._local.get(key)
            return entry.state if entry else None

    def waiting(self, key: str) -> Placeholder | None:
        """The placeholder this process posted for `key`, while it waits for its answer."""
        with self._lock:
            entry = self._local.get(key)
            return entry.placeholder if entry is not None and entry.state is Local.WAITING else None

    def reason(self, key: str) -> Outcome | None:
        with self._lock:
            entry = self._local.get(key)
            return entry.reason if entry else None

    def record(self, key: str) -> Placeholder | None:
        """The placeholder recorded for `key`, whichever process posted it; None if none is (or it
        cannot be read). Raises RedisError."""
        text = cast("str | None", self._redis.get(self._keys.reply(key)))
        try:
            return None if text is None else Placeholder.from_json(text)
        except SchemaError:
            return None

    def forget(self, key: str) -> None:
        """The question has its final outcome: stop tracking it. The record stays until its TTL,
        still naming the job key's owner. A Redis error is logged: the sweeper, finding the key
        settled, removes it later."""
        with self._lock:
            self._local.pop(key, None)
        try:
            self._redis.zrem(self._keys.replies, key)
        except redis.RedisError as exc:
            log.warning("could not untrack %s (%s); the sweeper will", key, exc)

    def drop(self, key: str) -> None:
        """Forget a placeholder only this process knew (never recorded in Redis)."""
        with self._lock:
            self._local.pop(key, None)

    # -- the sweeper -----------------------------------------------------------------------
    def local(self) -> list[tuple[Placeholder, Local]]:
        with self._lock:
            return [(e.placeholder, e.state) for e in self._local.values()]

    def tracked(self) -> list[Placeholder]:
        """Every placeholder tracked in Redis, earliest deadline first; memory entries Redis
        has lost are written back (a restart without persistence), so other processes and a
        restarted bot still find them. Raises RedisError."""
        keys = self._redis.zrange(self._keys.replies, 0, SNAPSHOT_MAX - 1)
        records = self._redis.mget([self._keys.reply(k) for k in keys]) if keys else []
        found: dict[str, Placeholder] = {}
        for key, record in zip(keys, records):
            if record is None:  # expired (a day after posting): long settled, or a bug; nothing to show
                log.warning("tracked placeholder %s outlived its record; untracking it", key)
                self._redis.zrem(self._keys.replies, key)
                continue
            try:
                found[key] = Placeholder.from_json(record)
            except SchemaError:
                log.error("tracked placeholder %s has no readable record; untracking it", key)
                self._redis.zrem(self._keys.replies, key)
        # Not those the intake is still recording (it knows whether Redis took them), nor those
        # told while Redis was away (their outcome is written instead).
        missing = [p for p, state in self.local()
                   if p.key not in found and state not in (Local.SUBMITTING, Local.SETTLED)]
        if missing and len(keys) < SNAPSHOT_MAX:
            # Untracked by another process (its outcome is recorded), or lost with Redis' data.
            outcomes = self._redis.mget([self._keys.outcome(p.key) for p in missing])
            lost = [p for p, outcome in zip(missing, outcomes) if outcome is None]
            for p, outcome in zip(missing, outcomes):
                if outcome is not None:
                    self.drop(p.key)
            if lost:
                log.warning("Redis lost %d tracked placeholder(s); writing them back", len(lost))
                pipe = self._redis.pipeline(transaction=False)
                for p in lost:
                    pipe.set(self._keys.reply(p.key), p.to_json(), ex=Keys.REPLY_TTL_S)
                    pipe.zadd(self._keys.replies, {p.key: p.deadline})
                pipe.expire(self._keys.replies, Keys.REPLY_TTL_S)
                pipe.execute()
                found.update({p.key: p for p in lost})
        return sorted(found.values(), key=lambda p: p.deadline)


class Leases:
    """Who is showing a question's final message right now (`Keys.delivering`, SET NX with a
    TTL renewed while the reply is retried): a result reclaimed by another bot process, or a
    sweeper of another process that sees the outcome claimed, leaves that question alone, so
    that two processes never post the same message twice."""

    def __init__(self, client: redis.Redis, keys: Keys, owner: str) -> None:
        self._redis = client
        self._keys = keys
        self.owner = owner

    def take(self, key: str) -> bool:
        """False if another live owner holds the lease. With Redis unreachable: True (every step
        is safe to repeat, and saying nothing would be worse)."""
        try:
            previous = self._redis.set(self._keys.delivering(key), self.owner, nx=True, ex=Keys.LEASE_TTL_S,
                                       get=True)
        except redis.RedisError:
            return True
        return previous is None or previous == self.owner

    def renewer(self, key: str) -> Callable[[], None]:
        def renew() -> None:
            try:
                self._redis.set(self._keys.delivering(key), self.owner, ex=Keys.LEASE_TTL_S)
            except redis.RedisError as exc:
                log.debug("could not renew the lease of %s: %s", key, exc)
        return renew

    def release(self, key: str) -> None:
        try:
            self._redis.delete(self._keys.delivering(key))
        except redis.RedisError as exc:
            log.debug("could not release the lease of %s (%s); it expires", key, exc)


class StatusEdits:
    """Progress edits of a placeholder never land after its final message.

    A status edit holds `Keys.edit(key)` while its chat.update is in flight and is made only
    while the question has no outcome; whoever shows the final message claims the outcome
    first, then waits for a status edit in flight to finish. So a status edit either saw the
    claim and did nothing, or finished before the final message was sent. An edit whose effect
    is unclear (it timed out: Slack may still apply it) leaves the lock to expire
    (`Keys.EDIT_LOCK_MS`), so the final message waits that long rather than risk being undone."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def begin(self, key: str) -> bool:
        """True if a status edit of `key` may go ahead now: none is in flight and the question
        has no outcome. The caller must `end(key)` after its edit. Raises RedisError."""
        if not self._redis.set(self._keys.edit(key), "1", nx=True, px=Keys.EDIT_LOCK_MS):
            return False
        if self._redis.exists(self._keys.outcome(key)):
            self.end(key)
            return False
        return True

    def end(self, key: str) -> None:
        try:
            self._redis.delete(self._keys.edit(key))
        except redis.RedisError as exc:
            log.debug("could not end the status edit of %s (%s); it expires", key, exc)

    def wait(self, key: str, poll_s: float = 0.05) -> None:
        """Until no status edit of `key` is in flight (at most its lock's TTL). Call after the
        outcome claim; with Redis away it returns, as no status edit can start then either."""
        deadline = time.monotonic() + Keys.EDIT_LOCK_MS / 1000
        try:
            while self._redis.exists(self._keys.edit(key)) and time.monotonic() < deadline:
                time.sleep(poll_s)
        except redis.RedisError:
            return
