"""The sweeper: every placeholder reaches a final state within a bound, whatever Redis does.

A thread of the bot process that looks, every `sweep_interval_s`, at the placeholders still
waiting (`bot.outcome.tracking.Tracker`: those in Redis, and those this process remembers) and
settles the ones nobody else will:

- overdue: no answer `reply_deadline_s` (QA_REPLY_DEADLINE_S, 10 minutes) after the
  placeholder was posted -> "no answer in time" and what to do;
- lost: older than `lost_grace_s` and Redis has no trace of the job (`JobQueue.known`), e.g.
  Redis restarted without persistence, or a failover promoted a replica that never got the
  job -> "I lost your question, ask again";
- unqueued: queueing failed on a Redis error and Redis then confirms the job is not there;
- a claim taken but its message not shown (the process died in between) -> shown again.

Each decision takes the question's outcome claim first (`bot.outcome.tracking.Outcomes`), so the
sweeper and the delivery never both speak: a result that arrives after "no answer in time"
is dropped, and a placeholder answered meanwhile is left alone. When Redis itself cannot be
reached at the deadline, the asker is told anyway (from this process's memory) and the
claim is written once Redis is back; this process's delivery drops a late result for it.

The messages go out on the reply lanes, so a slow Slack never stalls the sweep, and Slack
failures are retried like any reply's. Redis errors back the sweeper off; it never dies.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import redis

from bot.outcome.background import Background
from bot.outcome.replies import Stopped, tag
from bot.outcome.tracking import Leases, Local, Outcome, Placeholder, counted_as
from bot.services import ReplyFlow
from bot.ui import blocks
from bot.workspaces import Workspace, acting_for
from explain_core.ops import step
from explain_core.queue import consumer_name

log = logging.getLogger(__name__)

def outcome_message(placeholder: Placeholder, outcome: Outcome, deadline_s: float, *, redis_down: bool = False
                    ) -> blocks.Message:
    """What the asker reads in place of the placeholder: what happened and what to do."""
    if outcome is Outcome.CRASHED:
        text = "I lost your question: I was restarted while taking it. Please ask it again."
    elif outcome is Outcome.LOST:
        text = ("I lost your question: my job queue was restarted, or switched to its replica, and forgot it. "
                "Please ask it again.")
    elif outcome is Outcome.UNQUEUED:
        text = ("I couldn't take your question: my job queue did not answer. Please ask again in a few "
                "minutes; if it keeps happening, tell whoever runs this bot.")
    elif outcome is Outcome.REFUSED:
        text = "I couldn't take your question. Please ask again in a few minutes."
    else:
        minutes = f"{deadline_s / 60:.0f} minutes" if deadline_s >= 90 else f"{deadline_s:.0f} seconds"
        cause = ("I can't reach my job queue" if redis_down
                 else "the service is very busy, or no worker is running")
        text = (f"No answer after {minutes}: {cause}. Please ask again later; if it keeps happening, "
                "tell whoever runs this bot.")
    return blocks.outcome(placeholder.question, placeholder.asker, text, icon=":hourglass:")


class Sweeper(Background):
    """See the module doc. `sweep()` is one pass (tests call it directly)."""

    name = "sweeper"

    def __init__(self, flow: ReplyFlow) -> None:
        super().__init__(flow.stopping)
        self._flow = flow
        self._settings = flow.settings
        self.pause_s = flow.settings.sweep_interval_s
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # keys whose message is on a lane now
        self._leases = Leases(flow.queue.redis, flow.queue.keys, consumer_name())

    def round(self) -> int:
        return self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """One pass; returns how many placeholders it handed a final message to."""
        now = time.time() if now is None else now
        try:
            self._claim_settled_locally()
            tracked = self._flow.tracker.tracked()
        except redis.ConnectionError as exc:
            log.warning("sweeper: Redis unreachable (%s); settling overdue placeholders from memory", exc)
            return self._sweep_without_redis(now)
        states = dict((p.key, state) for p, state in self._flow.tracker.local())
        recorded = self._flow.outcomes.get_many([p.key for p in tracked])
        settled = 0
        for placeholder, outcome in zip(tracked, recorded):
            if self._is_busy(placeholder.key):
                continue
            state = states.get(placeholder.key)
            if outcome in (Outcome.ANSWER, Outcome.FAILED):
                continue  # the delivery has it, and untracks it when done
            if outcome is None:
                outcome = self._verdict(placeholder, state, now)
                if outcome is None:
                    continue
                claimed = self._flow.outcomes.claim(placeholder.key, outcome)
                if claimed is not outcome:
                    continue  # the delivery (or another sweeper) got there first
            elif state is Local.SUBMITTING and now < placeholder.deadline:
                continue  # the intake is showing its own refusal
            self._settle(placeholder, outcome)
            settled += 1
        return settled + self._sweep_abandoned(now)

    def _sweep_abandoned(self, now: float) -> int:
        """Questions whose process died between Slack's acknowledgement and its placeholder's
        record (`Tracker.abandoned`): claim CRASHED, then tell the asker (see `_tell_abandoned`)."""
        told = 0
        self._flow.tracker.close_unclosed()
        for pending in self._flow.tracker.abandoned(now):
            if self._is_busy(pending.key):
                continue
            if self._flow.outcomes.claim(pending.key, Outcome.CRASHED) is not Outcome.CRASHED:
                self._flow.tracker.expected(pending.key)  # it has its outcome already
                continue
            if not self._leases.take(pending.key):
                continue
            with self._lock:
                self._busy.add(pending.key)
            self._flow.lanes.submit(pending.channel, lambda p=pending: self._tell_abandoned(p))  # type: ignore[misc]
            told += 1
        return told

    def _tell_abandoned(self, pending: Placeholder) -> None:
        """The placeholder the dead process may have posted says it was lost; without one, a reply
        does. A placeholder that already says something else (the intake told the asker, then could
        not close its journal entry) is left as it is."""
        try:
            with acting_for(Workspace.of(pending.reply_to())) as workspace:
                if self._flow.serves(workspace):
                    found = self._flow.replier.find_message(pending.channel, pending.thread_ts,
                                                            {"job": tag(pending.key), "kind": "placeholder"},
                                                            since=pending.posted_at - 5)
                    if found is None or blocks.is_pending(str(found.get("text") or "")):
                        placeholder = replace(pending, ts=str(found["ts"]) if found else "")
                        self._tell(placeholder, Outcome.CRASHED,
                                   outcome_message(placeholder, Outcome.CRASHED, self._settings.reply_deadline_s))
            self._flow.tracker.expected(pending.key)
        except Stopped:
            pass
        finally:
            self._release(pending.key)

    def _release(self, key: str) -> None:
        """The question's outcome is shown (or left to another sweep): free its lease and this sweeper's hold."""
        self._leases.release(key)
        with self._lock:
            self._busy.discard(key)

    def _verdict(self, placeholder: Placeholder, state: Local | None, now: float) -> Outcome | None:
        """What to tell the asker now, or None to keep waiting."""
        if now >= placeholder.deadline:
            return Outcome.TIMEOUT
        if state is Local.SUBMITTING or now - placeholder.posted_at < self._settings.lost_grace_s:
            return None
        if self._flow.queue.known(placeholder.key):
            return None
        return Outcome.UNQUEUED if state is Local.UNCERTAIN else Outcome.LOST

    def _settle(self, placeholder: Placeholder, outcome: Outcome, *, redis_down: bool = False) -> None:
        message = outcome_message(placeholder, outcome, self._settings.reply_deadline_s, redis_down=redis_down)
        if not self._leases.take(placeholder.key):
            return  # another bot process is showing this question's outcome right now
        with self._lock:
            self._busy.add(placeholder.key)

        def task() -> None:
            try:
                with acting_for(Workspace.of(placeholder.reply_to())) as workspace:
                    if self._flow.serves(workspace):
                        self._tell(placeholder, outcome, message)
                    else:
                        log.info("placeholder of %s dropped: its workspace uninstalled the app", placeholder.key)
                if redis_down:
                    self._flow.tracker.mark(placeholder.key, Local.SETTLED, outcome)
                else:
                    self._flow.tracker.forget(placeholder.key)
            except Stopped:
                pass
            finally:
                self._release(placeholder.key)

        self._flow.lanes.submit(placeholder.channel, task)

    def _tell(self, placeholder: Placeholder, outcome: Outcome, message: blocks.Message) -> None:
        self._flow.edits.wait(placeholder.key)
        landing = self._flow.replier.settle(placeholder.reply_to(), tag(placeholder.key), message,
                                            heartbeat=self._leases.renewer(placeholder.key))
        if placeholder.thread_ts is not None:
            self._flow.replier.status(placeholder.channel, placeholder.thread_ts, "")  # no longer working
        if landing.how != "nowhere":
            self._flow.metrics.shown(counted_as(outcome), placeholder.asked_at)
        step(log, "delivered", placeholder.key, how=landing.how, outcome=outcome.value)

    def _is_busy(self, key: str) -> bool:
        with self._lock:
            return key in self._busy

    # -- Redis unreachable ----------------------------------------------------------------
    def _sweep_without_redis(self, now: float) -> int:
        """Overdue placeholders this process remembers are told now; their claims wait for Redis."""
        settled = 0
        for placeholder, state in self._flow.tracker.local():
            if state is Local.SETTLED or self._is_busy(placeholder.key) or now < placeholder.deadline:
                continue
            self._settle(placeholder, Outcome.TIMEOUT, redis_down=True)
            settled += 1
        return settled

    def _claim_settled_locally(self) -> None:
        """Redis is back: record the outcomes told while it was away, then stop tracking them."""
        for placeholder, state in self._flow.tracker.local():
            if state is not Local.SETTLED:
                continue
            self._flow.outcomes.claim(placeholder.key, self._flow.tracker.reason(placeholder.key) or Outcome.TIMEOUT)
            self._flow.tracker.forget(placeholder.key)
