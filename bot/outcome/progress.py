"""Live progress: the placeholder says where its question is until the answer replaces it.

The worker publishes `Progress` to a capped stream (`running` when it takes a job, then the
parts of a long document read). Every bot process reads the whole stream and edits only the
placeholders it posted itself and still waits on (its `Tracker`), so no two processes edit one
message. Until a worker takes a question, its place in line (`JobQueue.ahead`) is read every
`QUEUE_POLL_S` and shown as it changes. A status is a hint, so this never retries and never
delays an answer:

- a question answered within `QA_PROGRESS_AFTER_S` gets no status edit at all;
- one placeholder is edited at most once per `PROGRESS_EDIT_INTERVAL_S`, with the newest status
  (older ones are skipped), and the process makes at most `PROGRESS_EDITS_PER_MINUTE` edits in
  all, within chat.update's rate limit; a 429 pauses every status edit for its Retry-After;
- a failed edit counts like a made one (no retry storm against a message Slack refuses);
- `StatusEdits` orders a status edit before the final message, never after it: an edit whose
  effect is unclear (a timeout) keeps its lock until it expires, as Slack may still apply it;
- a question asked in a thread also gets Slack's assistant status ("is explaining…") with its
  first status edit, under the same lock; the delivery and the sweeper clear it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bot.outcome.background import Background
from bot.outcome.replies import classify
from bot.outcome.tracking import Local, Placeholder
from bot.services import ReplyFlow
from bot.slack_client import web_client
from bot.ui import blocks
from bot.workspaces import Workspace, acting_for
from explain_core import defaults
from explain_core.queue import Progress

log = logging.getLogger(__name__)

EDIT_TIMEOUT_S = 5  # per socket operation; a status edit's lock (Keys.EDIT_LOCK_MS) outlasts a slow one
QUEUE_POLL_S = 2.0  # how often the places in line of the waiting questions are read (one pipeline)
READ_BLOCK_MS = 250  # how long a read waits for news: also how late a due status can be
ASSISTANT_STATUS = "is explaining…"


@dataclass
class _Status:
    progress: Progress
    since: float  # monotonic time the question was first seen running
    shown: Progress | None = None  # the status last tried, shown or refused
    shown_at: float = 0.0


class LiveProgress(Background):
    """The progress reader of one bot process (see the module doc)."""

    name = "progress"

    def __init__(self, flow: ReplyFlow) -> None:
        super().__init__(flow.stopping)
        self._flow = flow
        self._after_s = flow.settings.progress_after_s
        self._client = web_client(flow.settings, flow.metrics, retries=False, timeout=EDIT_TIMEOUT_S,
                                  installations=flow.installations)
        self._position: str | None = None
        self._statuses: dict[str, _Status] = {}
        self._edits: list[float] = []  # monotonic times of the edits of the last minute
        self._paused_until = 0.0
        self._polled = 0.0

    def round(self) -> int:
        if self._position is None:
            self._position = self._flow.queue.progress_position()
        self._position, events = self._flow.queue.read_progress(self._position, READ_BLOCK_MS)
        now = time.monotonic()
        for event in events:
            self._note(event, now)
        if now - self._polled >= QUEUE_POLL_S:
            self._polled = now
            self._places(now)
        return self._show(now)

    def _note(self, event: Progress, now: float) -> None:
        """Remember the newest status of a question this process waits on. A worker may take a
        job before the intake has finished queueing it, so a question still being submitted
        counts too (its status is shown once the intake is done)."""
        status = self._statuses.get(event.key)
        if status is not None:
            status.progress = event
        elif self._flow.tracker.state(event.key) in (Local.SUBMITTING, Local.WAITING):
            self._statuses[event.key] = _Status(event, now)

    def _places(self, now: float) -> None:
        """Each waiting question's place in line, as a `queued` status, until the worker takes it:
        in the stream, or at its workspace's gate (many workspaces). A question that waits behind
        its asker's earlier one (not in the line yet) keeps what the placeholder says."""
        queued = [p for p, state in self._flow.tracker.local() if state is Local.WAITING
                  and (p.key not in self._statuses or self._statuses[p.key].progress.stage == "queued")]
        keys = [p.key for p in queued]
        for key, ahead in zip(keys, self._flow.queue.ahead(keys, [p.team for p in queued])):
            if ahead is not None:
                self._note(Progress(key, "queued", ahead), now)

    def _show(self, now: float) -> int:
        """Edit the placeholders whose newest status is due; returns how many were edited."""
        edited = 0
        self._edits = [t for t in self._edits if now - t < 60]
        for key, status in list(self._statuses.items()):
            state = self._flow.tracker.state(key)
            if state not in (Local.SUBMITTING, Local.WAITING):
                del self._statuses[key]  # answered or settled: nothing more to show
                continue
            placeholder = self._flow.tracker.waiting(key)
            if placeholder is None:
                continue  # the intake is still queueing it
            due = (status.progress != status.shown and now - status.since >= self._after_s
                   and now - status.shown_at >= defaults.PROGRESS_EDIT_INTERVAL_S)
            if not due or now < self._paused_until or len(self._edits) >= defaults.PROGRESS_EDITS_PER_MINUTE:
                continue
            first = status.shown is None
            status.shown, status.shown_at = status.progress, now
            self._edits.append(now)
            edited += self._edit(placeholder, status.progress, first)
        return edited

    def _edit(self, placeholder: Placeholder, progress: Progress, first: bool) -> bool:
        """One status edit (with the assistant status, `first` time in a thread), unless the final
        message is being shown. Raises RedisError."""
        if not self._flow.edits.begin(placeholder.key):
            return False
        unclear = False
        try:
            with acting_for(Workspace.of(placeholder.reply_to())):
                return self._show_status(placeholder, progress, first)
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            if failure.retry_after:
                self._paused_until = time.monotonic() + failure.retry_after
            # No answer at all after sending (a timeout, a reset): Slack may apply it yet, so the
            # lock must outlive it. An error Slack answered with is over, whatever it did.
            unclear = failure.sent and failure.status is None
            log.info("status of %s not shown: %s", placeholder.key, failure.error)
            return False
        finally:
            if not unclear:
                self._flow.edits.end(placeholder.key)

    def _show_status(self, placeholder: Placeholder, progress: Progress, first: bool) -> bool:
        """The edit itself, in the question's workspace; raises what the Slack client raises."""
        if first and placeholder.thread_ts is not None:
            self._flow.replier.status(placeholder.channel, placeholder.thread_ts, ASSISTANT_STATUS, self._client)
        message = blocks.working(placeholder.question, placeholder.asker, progress.stage, progress.done,
                                 progress.total)
        self._client.chat_update(channel=placeholder.channel, ts=placeholder.ts, **message.kwargs())
        return True
