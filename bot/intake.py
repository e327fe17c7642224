"""From a question to a queued job: validate, enqueue, post the placeholder.

Every entry point (slash command, modal, mention, DM, message shortcut) ends here, so the
rules are the same everywhere: a question and a passage are required, the passage is
capped at the worker's own limit (`explain_core.settings.max_passage_chars`), a Slack
retry never queues a second job, and a question that is not taken becomes a `Refusal`
(bad input, a full queue, Redis down) whose message the listener shows to the user as an
ephemeral message.

The placeholder is posted after the job is queued (the queue tells how many are ahead),
so a fast worker can finish before the placeholder exists. `Placeholders` is the small
handshake that settles that race: the listener records the placeholder's ts with SET NX;
the result consumer waits for it a little, then claims the slot itself and posts a fresh
reply, and whichever side loses backs off (the listener deletes its late placeholder).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.documents import Document, Documents
from explain_core.errors import InputError, Unavailable
from explain_core.queue import JobOptions, JobQueue, Keys, ReplyTo
from explain_core.validation import validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ask:
    """One question ready to queue.

    `key` is the idempotency key built from Slack's ids (team + channel + message ts, a
    trigger id or a view id), so Slack's retries map to the same job. `thread_ts` is where
    the reply goes; None posts the placeholder as a new message whose thread then holds
    the picture. `remember` caches the passage as that thread's document, so follow-up
    mentions in the thread can ask about the same passage.
    """

    key: str
    team: str
    channel: str
    user: str
    question: str
    passage: str
    thread_ts: str | None
    options: JobOptions = field(default_factory=JobOptions)
    show_asker: bool = False
    remember: bool = False
    sources: tuple[str, ...] = ("message",)


class Placeholders:
    """Where each job's reply lives (see the module doc): placeholder ts, or a state."""

    GAVE_UP = "gave-up"  # the consumer stopped waiting and replies with a new message
    CANCELLED = "cancelled"  # no placeholder could be posted; drop the result

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def get(self, key: str) -> str | None:
        return self._redis.get(self._keys.placeholder(key))

    def offer(self, key: str, value: str) -> str:
        """Set the slot if empty; return what it holds now (ours, or the other side's)."""
        if self._redis.set(self._keys.placeholder(key), value, nx=True, ex=Keys.PLACEHOLDER_TTL_S):
            return value
        current = self._redis.get(self._keys.placeholder(key))
        return value if current is None else current

    def replace(self, key: str, ts: str) -> None:
        """Point the slot at the consumer's own reply, so a redelivery updates it in place."""
        self._redis.set(self._keys.placeholder(key), ts, ex=Keys.PLACEHOLDER_TTL_S)


class Intake:
    """Queues validated questions and posts their placeholders."""

    def __init__(self, queue: JobQueue, client: WebClient, documents: Documents,
                 placeholders: Placeholders) -> None:
        self._queue = queue
        self._client = client
        self._documents = documents
        self._placeholders = placeholders

    def first_delivery(self, key: str) -> bool:
        """False if the Slack event whose job key is `key` was already handled (a retry): it
        must do nothing, not even repeat an error message. If Redis is down the event is
        handled, and the enqueue will say so."""
        try:
            return self._queue.claim_once(key, ttl_s=Keys.EVENT_TTL_S)
        except redis.RedisError:
            return True

    def submit(self, ask: Ask) -> None:
        """Validate, enqueue, post the placeholder. Raises a Refusal for the user."""
        validate(ask.question, ask.passage)
        reply_to = ReplyTo(team=ask.team, channel=ask.channel, thread_ts=ask.thread_ts, user=ask.user,
                           question=blocks.shorten(ask.question, blocks.QUESTION_SHOWN_MAX),
                           asker=ask.user if ask.show_asker else None)
        try:
            queued = self._queue.enqueue(ask.key, ask.question, ask.passage, ask.options, reply_to)
        except redis.RedisError as exc:
            log.warning("enqueue failed: Redis unavailable (%s)", exc)
            raise Unavailable() from None
        if queued.duplicate:
            log.info("job %s is a duplicate (a retried request); nothing to do", ask.key)
            return
        message = blocks.placeholder(ask.question, reply_to.asker, queued.ahead)
        try:
            ts = self._client.chat_postMessage(channel=ask.channel, thread_ts=ask.thread_ts, **message.kwargs())["ts"]
        except SlackApiError as exc:
            self._placeholders.offer(ask.key, Placeholders.CANCELLED)
            raise InputError("cannot_post", f"I can't post in this conversation (Slack said: "
                                            f"{exc.response.get('error')}). Invite me with `/invite @explain`, "
                                            "or ask me in a direct message.") from None
        if self._placeholders.offer(ask.key, ts) != ts:
            # The answer was faster and went out as its own message: this placeholder is stale.
            self._client.chat_delete(channel=ask.channel, ts=ts)
        if ask.remember:
            try:
                self._documents.remember(ask.team, ask.channel, ask.thread_ts or ts, Document(ask.passage, ask.sources))
            except Unavailable:  # the job is queued; only follow-up questions lose the cache
                log.warning("could not cache the passage for the thread: Redis unavailable")

    def tell(self, channel: str, user: str, thread_ts: str | None, message: blocks.Message) -> None:
        """An ephemeral message only `user` sees; failures are logged (there is no one else to tell)."""
        try:
            self._client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **message.kwargs())
        except SlackApiError as exc:
            log.warning("could not send an ephemeral message in %s: %s", channel, exc.response.get("error"))
