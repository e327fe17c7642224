"""The result consumer: a thread of the bot process that turns each result into its reply.

Results arrive at least once (a bot that dies before acking gets its results re-delivered
to another consumer by the queue's XAUTOCLAIM). Each result:

1. takes the question's outcome claim (`bot.outcome.tracking.Outcomes`) as the answer; if the
   sweeper or a refusal already took it, the result is dropped (logged), so an answer never
   follows "timed out" or "lost". A redelivered result finds its own claim and goes on;
2. replaces the placeholder (its ts travels in the job's reply address) with chat.update,
   idempotent by nature, or reaches the asker the best way still open (`Replier.settle`);
3. uploads each picture into the thread once: `uploaded:<key>:<i>` is marked only after
   Slack said ok, and an `upload-started` marker left by an attempt that died makes the next
   one look in the thread before uploading again (so neither a crash nor a timeout posts a
   picture twice, and nothing is marked posted that Slack did not take);
4. is acked last.

Every Slack call of a result is made with the token of the question's own installation
(`bot.workspaces.acting_for`, from the job's reply address); a result whose workspace has
uninstalled the app is dropped without a word.

Transient Slack failures are retried for minutes (`QA_SLACK_RETRY_S`) on `Lanes`: one lane
per channel keeps a channel's replies in order while other channels' replies go on.
A lease (`Keys.delivering`) tells a consumer that reclaims a result still being retried by
another live process to leave it alone.
"""
from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from bot.outcome.background import MAX_BACKOFF_S, Background
from bot.outcome.replies import Landing, SlackFailed, Stopped, tag
from bot.outcome.tracking import Leases, Local, Outcome, counted_as
from bot.services import ReplyFlow
from bot.ui import blocks
from bot.ui.answers import AnswerRecord
from bot.workspaces import Workspace, acting_for
from explain_core.ops import step
from explain_core.queue import RESULTS_GROUP, JobError, JobResult, ResultEntry, consumer_name

log = logging.getLogger(__name__)

T = TypeVar("T")



def reply_message(result: JobResult, record: AnswerRecord | None = None) -> blocks.Message:
    """Block Kit for a result: the answer(s), or why there is none; with buttons when the
    answer has a `record` for them to act on."""
    question = result.reply_to.question or ""
    asker = result.reply_to.asker
    if result.ok and result.answers:
        actions = None if record is None else blocks.Actions(record.tag, record.method, len(record.offers) > 1)
        return blocks.answer(question, asker, result.answers, actions=actions,
                             pictures_in_thread=bool(result.images) and result.reply_to.thread_ts is None)
    return blocks.job_failed(question, asker, result.error or JobError("no_answer", "the worker sent no answer"))


def _reason(result: JobResult) -> str:
    """What the outcome count says of a result: `no_answer`, the worker's error code, or nothing."""
    if not result.ok:
        return result.error.code if result.error else "no_result"
    return "no_answer" if result.answers and all(a.no_answer for a in result.answers) else ""


class Delivery(Background):
    """Reads the results stream in its own consumer group and hands each result to a lane.

    `run_once()` reads one batch (used by `start()`'s thread, and directly by tests);
    `deliver()` is the whole path of one result, synchronously.
    """

    name = "result consumer"

    def __init__(self, flow: ReplyFlow, consumer: str | None = None) -> None:
        super().__init__(flow.stopping)
        self._flow = flow
        self._queue = flow.queue
        self._redis = flow.queue.redis
        self.consumer = consumer or consumer_name()  # each bot process is its own consumer
        self._capacity = 4 * flow.settings.delivery_threads  # results read and not yet finished
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._leases = Leases(self._redis, self._queue.keys, self.consumer)

    def round(self) -> int:
        return self.run_once()

    # -- reading ------------------------------------------------------------------------
    def run_once(self, block_ms: int = 1000) -> int:
        """Read a batch of results and hand each to its channel's lane; returns how many."""
        room = self._capacity - self._flow.lanes.pending()
        if room <= 0:
            self._stop.wait(0.1)
            return 0
        entries = self._queue.read_results(RESULTS_GROUP, self.consumer, count=min(room, 10), block_ms=block_ms)
        taken = 0
        for entry in entries:
            with self._lock:
                if entry.entry_id in self._in_flight:  # our own, reclaimed while it is still being retried
                    continue
                self._in_flight.add(entry.entry_id)
            self._flow.lanes.submit(entry.result.reply_to.channel or "-", functools.partial(self._process, entry))
            taken += 1
        return taken

    def _process(self, entry: ResultEntry) -> None:
        key = entry.result.key
        try:
            if not self._leases.take(key):
                log.info("result %s is being delivered by another consumer; leaving it", key)
                return
            try:
                with acting_for(Workspace.of(entry.result.reply_to)):
                    landing = self.deliver(entry.result)
                self._redis_retry(lambda: self._queue.ack_result(RESULTS_GROUP, entry.entry_id))
                if landing is not None:  # a dropped result's placeholder is whoever settled it's to untrack
                    self._flow.tracker.forget(key)
            finally:
                self._leases.release(key)
        except Stopped:
            log.info("stopping: result %s stays unacked for another consumer", key)
        finally:
            with self._lock:
                self._in_flight.discard(entry.entry_id)

    # -- one result ---------------------------------------------------------------------
    def deliver(self, result: JobResult) -> Landing | None:
        """The whole path of one result (see the module doc); safe to repeat. Returns where
        the reply landed, None if the result was dropped."""
        reply_to = result.reply_to
        key = result.key
        channel = reply_to.channel
        if not channel:
            log.error("result %s has no channel to reply to; dropping it", key)
            return None
        if not self._flow.serves(Workspace.of(reply_to)):
            log.info("result %s dropped: its workspace uninstalled the app", key)
            self._flow.tracker.forget(key)
            return None
        if self._flow.tracker.state(key) is Local.SETTLED:
            log.info("result %s dropped: its asker was already told %s", key, self._flow.tracker.reason(key))
            return None
        delivered = Outcome.ANSWER if result.ok else Outcome.FAILED
        claimed = self._redis_retry(lambda: self._flow.outcomes.claim(key, delivered, _reason(result)))
        if claimed is not delivered:
            log.info("result %s dropped: the question's outcome is already %r", key, claimed)
            return None
        heartbeat = self._leases.renewer(key)
        self._flow.edits.wait(key)  # a status line in flight lands before the answer, never after
        record = self._keep(result, reply_to.thread_ts or reply_to.ts)
        landing = self._flow.replier.settle(reply_to, tag(key), reply_message(result, record), heartbeat=heartbeat)
        if landing.how == "nowhere":
            return landing
        self._shown(result, counted_as(delivered, _reason(result)))
        step(log, "delivered", key, result.job_id, how=landing.how)
        thread_ts = reply_to.thread_ts or (landing.ts if landing.in_channel else None)
        if record is not None and thread_ts is not None and thread_ts != record.thread_ts:
            self._keep(result, thread_ts)  # posted in place of the placeholder: its thread is the new message's
        if reply_to.thread_ts is not None:
            self._flow.replier.status(channel, reply_to.thread_ts, "")  # the answer is there
        if result.images and thread_ts is not None:
            self._pictures(result, channel, thread_ts, heartbeat)
        elif result.images:
            log.warning("result %s: the pictures have no thread to go to (%s)", key, landing.reason)
        return landing

    def _shown(self, result: JobResult, kind: str) -> None:
        """Time the question's final message (from when it was asked: its placeholder's record)."""
        try:
            placeholder = self._flow.tracker.record(result.key)
        except redis.RedisError:
            return  # one sample fewer; the answer is out
        if placeholder is not None:
            self._flow.metrics.shown(kind, placeholder.asked_at)

    def _keep(self, result: JobResult, thread_ts: str | None) -> AnswerRecord | None:
        """Keep what the answer's buttons need; None (no buttons) for an answer they cannot act
        on, or when Redis cannot keep it: buttons that could only say "expired" are left out."""
        record = AnswerRecord.of(tag(result.key), result, thread_ts) if thread_ts else None
        if record is None:
            return None
        try:
            self._flow.answers.keep(record)
        except redis.RedisError as exc:
            log.warning("answer %s goes without buttons: Redis unavailable (%s)", result.key, exc)
            return None
        return record

    def _pictures(self, result: JobResult, channel: str, thread_ts: str, heartbeat: Callable[[], None]) -> None:
        for i, image in enumerate(result.images):
            done = f"uploaded:{result.key}:{i}"
            if self._redis_retry(functools.partial(self._redis.exists, self._queue.keys.once(done))):
                continue
            fresh = self._redis_retry(functools.partial(self._queue.claim_once, f"upload-started:{result.key}:{i}"))
            title = f"Why this answer ({image.model})" if len(result.images) > 1 else "Why this answer"
            try:
                self._flow.replier.upload(channel, thread_ts, image.png, f"explanation-{tag(result.key)}-{i + 1}.png",
                                          title, image.alt_text, look_first=not fresh, heartbeat=heartbeat)
            except SlackFailed as exc:
                log.warning("picture %d of %s not posted: %s", i + 1, result.key, exc.reason())
                self._tell_picture_failed(result, exc)
                return  # the same reason stops every other picture of this reply
            self._redis_retry(functools.partial(self._queue.claim_once, done))

    def _tell_picture_failed(self, result: JobResult, exc: SlackFailed) -> None:
        reply_to = result.reply_to
        message = blocks.error(f"I couldn't post the picture of the words that mattered: {exc.reason()}.")
        try:
            self._flow.replier.tell(reply_to.channel or "", reply_to.user, reply_to.thread_ts, message,
                                    reply_to.response_url, window_s=0.0)
        except SlackFailed as again:
            log.warning("could not tell %s that the picture failed: %s", reply_to.user, again.reason())

    # -- Redis, never fatal -------------------------------------------------------------
    def _redis_retry(self, call: Callable[[], T]) -> T:
        """`call()`, retried with backoff for every Redis error until it works or the process stops."""
        backoff = 0.5
        while True:
            try:
                return call()
            except redis.RedisError as exc:
                log.warning("Redis error while delivering (%s); retrying in %.1fs", exc, backoff)
                self._flow.replier.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
