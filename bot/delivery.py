"""The result consumer: a thread of the bot process that posts each answer exactly once.

Results arrive at least once (a bot that dies before acking gets its results re-delivered
to another consumer by the queue's XAUTOCLAIM). Each step is made safe to repeat:

- the answer replaces the placeholder with chat.update, which is idempotent by nature:
  doing it twice leaves the same message;
- when there is no placeholder (see `bot.intake.Placeholders`), a fresh reply is posted
  once, guarded by `claim_once("posted:<key>")`, and the slot is pointed at it so a
  redelivery updates it instead;
- each picture is uploaded once, guarded by `claim_once("uploaded:<key>:<i>")`.

Markers are claimed *before* the Slack call, so a crash can never post twice; the price is
that a picture whose upload fails after slack_sdk's own retries (429/5xx/connection) is
not tried again — that failure is logged. The result is acked last.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.intake import Placeholders
from bot.settings import BotSettings
from explain_core.queue import RESULTS_GROUP, JobError, JobQueue, JobResult, ResultEntry, consumer_name

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


class _Wait(Exception):
    """The placeholder is not recorded yet: try this result again shortly."""


@dataclass
class _Pending:
    entry: ResultEntry
    first_seen: float
    next_try: float
    attempts: int = 0


def reply_message(result: JobResult) -> blocks.Message:
    """Block Kit for a result: the answer(s), or why there is none."""
    question = result.reply_to.question or ""
    asker = result.reply_to.asker
    if result.ok and result.answers:
        return blocks.answer(question, asker, result.answers)
    return blocks.job_failed(question, asker, result.error or JobError("no_answer", "the worker sent no answer"))


class Delivery:
    """Reads the results stream in its own consumer group and posts replies.

    `run_once()` does one round (used by `start()`'s thread, and directly by tests that
    need to stop a consumer at a precise point).
    """

    def __init__(self, queue: JobQueue, client: WebClient, settings: BotSettings,
                 consumer: str | None = None) -> None:
        self._queue = queue
        self._client = client
        self._settings = settings
        self._placeholders = Placeholders(queue.redis, queue.keys)
        self.consumer = consumer or consumer_name()  # each bot process (gunicorn worker) is its own consumer
        self._pending: dict[str, _Pending] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Delivery:
        self._thread = threading.Thread(target=self._loop, name=f"delivery-{self.consumer}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.run_once()
                backoff = 0.5
            except redis.RedisError as exc:
                log.warning("result consumer: Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("result consumer failed; continuing")
                self._stop.wait(1.0)

    # -- one round ------------------------------------------------------------------------
    def run_once(self, block_ms: int = 1000) -> int:
        """Retry due waiting results, then read new ones; returns how many were finished."""
        done = 0
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if p.next_try <= now]:
            done += self._process(pending)
        wait_ms = 100 if self._pending else block_ms
        for entry in self._queue.read_results(RESULTS_GROUP, self.consumer, count=10, block_ms=wait_ms):
            if entry.entry_id not in self._pending:  # a reclaim of one we are already retrying
                done += self._process(_Pending(entry, time.monotonic(), 0.0))
        return done

    def _process(self, pending: _Pending) -> int:
        entry = pending.entry
        try:
            self.deliver(entry.result, waited_s=time.monotonic() - pending.first_seen)
        except _Wait:
            pending.next_try = time.monotonic() + 0.2
            self._pending[entry.entry_id] = pending
            return 0
        except (SlackClientError, OSError) as exc:  # SlackApiError is a SlackClientError; URLError an OSError
            pending.attempts += 1
            if _permanent(exc) or pending.attempts >= MAX_ATTEMPTS:
                log.error("giving up on the reply for %s after %d attempt(s): %s",
                          entry.result.key, pending.attempts, _describe(exc))
            else:
                log.warning("reply for %s failed (%s); retrying", entry.result.key, _describe(exc))
                pending.next_try = time.monotonic() + 2.0 ** pending.attempts
                self._pending[entry.entry_id] = pending
                return 0
        self._pending.pop(entry.entry_id, None)
        self._queue.ack_result(RESULTS_GROUP, entry.entry_id)
        return 1

    def deliver(self, result: JobResult, waited_s: float = 0.0) -> None:
        """Post one result's reply and pictures; safe to call again for the same result."""
        channel = result.reply_to.channel
        if not channel:
            log.error("result %s has no channel to reply to; dropping it", result.key)
            return
        slot = self._placeholders.get(result.key)
        if slot is None:
            if waited_s < self._settings.placeholder_wait_s:
                raise _Wait()
            slot = self._placeholders.offer(result.key, Placeholders.GAVE_UP)
        if slot == Placeholders.CANCELLED:
            log.info("result %s: the question was cancelled (no placeholder could be posted)", result.key)
            return
        message = reply_message(result)
        reply_ts: str | None
        if slot == Placeholders.GAVE_UP:
            reply_ts = self._post_fresh(result, channel, message)
        else:
            self._client.chat_update(channel=channel, ts=slot, **message.kwargs())
            reply_ts = slot
        thread_ts = result.reply_to.thread_ts or reply_ts
        for i, image in enumerate(result.images):
            if not self._queue.claim_once(f"uploaded:{result.key}:{i}"):
                continue
            self._client.files_upload_v2(
                channel=channel, thread_ts=thread_ts, content=image.png,
                filename=f"explanation-{i + 1}.png", title=_image_title(result, i), alt_txt=image.alt_text)

    def _post_fresh(self, result: JobResult, channel: str, message: blocks.Message) -> str | None:
        """The reply as a new message (the placeholder never appeared), at most once."""
        if not self._queue.claim_once(f"posted:{result.key}"):
            return None  # an earlier attempt posted it and died before recording where
        response = self._client.chat_postMessage(channel=channel, thread_ts=result.reply_to.thread_ts,
                                                 **message.kwargs())
        self._placeholders.replace(result.key, response["ts"])
        return str(response["ts"])


def _image_title(result: JobResult, index: int) -> str:
    image = result.images[index]
    return f"Why this answer ({image.model})" if len(result.images) > 1 else "Why this answer"


def _permanent(exc: Exception) -> bool:
    """An API error Slack will repeat however often we ask (not a rate limit or an outage)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        return status < 500 and status != 429
    return False


def _describe(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack said {exc.response.get('error')!r} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"

