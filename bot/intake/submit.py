"""From a question to a queued job: validate, admit, post the placeholder, then enqueue.

Every entry point (slash command, modal, mention, DM, message shortcut) ends here, so the
rules are the same everywhere: a question and a passage are required, the passage is
capped at the worker's own limit (`explain_core.settings.max_passage_chars`), a Slack
retry never queues a second job, and a question that is not taken becomes a `Refusal`
whose message the listener shows to the user as an ephemeral message.

The order is what keeps the reply flow free of races:

1. `JobQueue.admit` (the asker's and the channel's limits) before anything is posted, so
   a flood posts no placeholders; refusals here are ephemeral.
2. The placeholder is posted; from then on it is tracked (`bot.outcome.tracking.Tracker`) until it
   shows the question's one final outcome.
3. The job is queued with the placeholder's ts in its reply address, so the delivery
   always edits that message and never has to wait for it or post a second one.
   A refusal from here on (duplicate, busy, limits, Redis down) edits the placeholder.

A Redis error while queueing leaves it unknown whether the job was queued (Redis may have
run the command and lost only the reply), so nothing is said then: the placeholder stays
tracked, and the sweeper says "couldn't take it" only once Redis confirms the job is not
there (or the answer arrives as usual).

Every question that reaches `submit` is counted received (`bot.metrics`), and logged by its key
at each step (received, placeholder, queued); a refusal that no outcome claim records (before
the placeholder, a duplicate, Redis down at the record) is counted here as its final outcome.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import redis

from bot.intake.documents import Document, Documents
from bot.metrics import BotMetrics, entry_point
from bot.outcome.replies import REPLY_TIMEOUT_S, Replier, SlackFailed, tag
from bot.outcome.tracking import Leases, Local, Outcome, Outcomes, Placeholder, Tracker
from bot.ui import blocks
from bot.ui.answers import Asked, Recent
from bot.workspaces import Workspace, current
from explain_core.errors import Busy, InputError, Limited, Refusal, Unavailable
from explain_core.ops import step
from explain_core.queue import JobOptions, JobQueue, Keys, consumer_name
from explain_core.queue.connect import WRITES_REFUSED, unavailable
from explain_core.queue.purge import note_org_team
from explain_core.validation import validate

log = logging.getLogger(__name__)

# How long a listener retries Slack for the placeholder (and a refusal) before telling the
# asker that Slack is failing: someone is waiting for it, and the listener holds a thread.
LISTENER_RETRY_S = 60.0
# How long after its journal entry a question may still be on its way to a recorded placeholder
# in a live process: the placeholder's retries, a last Slack call's timeout, the record. Past it,
# the sweeper (any process) takes the process for dead and tells the asker the question was lost.
INTAKE_GRACE_S = LISTENER_RETRY_S + 2 * REPLY_TIMEOUT_S
REPLAYED = "I got this request again and took it only once: its answer comes in my first reply."


@dataclass(frozen=True)
class Ask:
    """One question ready to queue.

    `key` is the idempotency key built from Slack's ids (team + channel + message ts, a
    trigger id or a view id), so Slack's retries map to the same job. `thread_ts` is where
    the reply goes; None posts the placeholder as a new message whose thread then holds
    the picture. `remember` caches the passage as that thread's document, so follow-up
    mentions in the thread can ask about the same passage; a `private` one answers only its
    asker's follow-ups (bot.intake.documents). `response_url` (slash command,
    message shortcut) reaches the asker where the bot cannot post. `doc_ts` is the message whose
    document the passage is, when that is not the reply's thread (a shortcut on a reply).
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
    private: bool = False  # the passage was typed where only the asker saw it (/explain, its form)
    sources: tuple[str, ...] = ("message",)
    response_url: str | None = None
    doc_ts: str | None = None
    asked_at: float = field(default_factory=time.time)  # read from Slack's request (and its files) by then


class _OneAtATime:
    """A lock per name, created on first use and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(name, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[name]


class Intake:
    """Queues validated questions behind their placeholders (see the module doc)."""

    def __init__(self, queue: JobQueue, replier: Replier, tracker: Tracker, outcomes: Outcomes,
                 documents: Documents, recent: Recent, deadline_s: float, metrics: BotMetrics) -> None:
        self._queue = queue
        self._metrics = metrics
        self._recent = recent
        self._replier = replier
        self._tracker = tracker
        self._outcomes = outcomes
        self._documents = documents
        self._deadline_s = deadline_s
        self._askers = _OneAtATime()
        self._leases = Leases(queue.redis, queue.keys, consumer_name())

    def first_delivery(self, key: str, token: str, ttl_s: int = Keys.EVENT_TTL_S) -> bool:
        """False if the Slack event whose job key is `key` was already taken by another
        delivery of it (a retry): it must do nothing, not even repeat an error message.

        `token` is unique to this delivery of the event (see `JobQueue.claim_once`). If Redis
        is down the event is handled, and the intake will say that Redis is down. If Redis refuses
        writes (full, read-only), the refusal is raised here, before anything is posted, so the
        asker hears why privately rather than from a placeholder in the channel."""
        try:
            return self._queue.claim_once(key, ttl_s, token)
        except redis.RedisError as exc:
            refusal = unavailable(exc)
            if refusal.code in WRITES_REFUSED:
                if self._taken_already(key, token):
                    return False  # a retry of a delivery taken before Redis refused writes: that one tells
                log.warning("request %s not taken: Redis refuses writes (%s)", key, exc)
                raise refusal from None
            return True

    def _taken_already(self, key: str, token: str) -> bool:
        """Whether another delivery holds `key`'s first-delivery claim (read: Redis still answers reads
        when it refuses writes); False if that cannot be read either."""
        try:
            holder = self._queue.redis.get(self._queue.keys.once(key))
        except redis.RedisError:
            return False
        return holder is not None and holder != token

    def first_request(self, key: str, tell: Callable[[blocks.Message], None]) -> bool:
        """False for a copy of a slash command or a form submission already taken (job key
        `key`: its trigger id, its view id): Slack never sends these twice, so a copy is a
        replay of the signed request, which its signature lets through for 5 minutes. A copy
        posts nothing public; the first copy tells the asker privately (`tell`) and the later
        ones nothing, so however many copies come, the channel sees one question and the asker
        at most one notice. Checked before anything is posted; fails open as `first_delivery`."""
        if self.first_delivery(key, uuid.uuid4().hex, Keys.REQUEST_TTL_S):
            return True
        log.info("request %s came again (a replay); ignored", key)
        try:
            first_copy = self._queue.claim_once(f"replayed:{key}", Keys.REQUEST_TTL_S)
        except redis.RedisError:
            first_copy = False  # said nothing rather than risk saying it once per copy
        if first_copy:
            tell(blocks.notice(REPLAYED))
        return False

    def submit(self, ask: Ask) -> bool:
        """Validate, admit, post the placeholder, enqueue. Raises a Refusal for the user while
        nothing is posted; afterwards every outcome is shown in the placeholder. Returns False
        when the job was surely not queued (the placeholder says why), True when it was or may
        have been (a Redis error while queueing: the sweeper settles it).

        One person's questions go through this one at a time in a process, so that a flood
        cannot slip several questions past `admit` before the first is queued: each is refused
        ephemerally, without a placeholder. (`enqueue` enforces the limits atomically too, for
        questions racing in from another process; such a loser's placeholder shows the refusal.)"""
        self._metrics.receive(ask.key)
        step(log, "received", ask.key, entry=entry_point(ask.key), passage_chars=len(ask.passage))
        try:
            validate(ask.question, ask.passage)
            with self._askers.hold(f"{ask.team}:{ask.user}"):
                return self._submit(ask)
        except Refusal as exc:  # told at once, ephemerally: no placeholder, no claim
            self._settled(ask.key, exc.code)
            raise

    def _settled(self, key: str, reason: str) -> None:
        """A refusal that no outcome claim records: counted and logged here, once."""
        self._metrics.settle("refused", reason)
        step(log, "outcome", key, outcome="refused", reason=reason)

    def _submit(self, ask: Ask) -> bool:
        try:
            self._queue.admit(ask.user, ask.channel, ask.team)
            waiting = self._queue.depth()
        except redis.RedisError as exc:
            log.warning("admit failed: Redis unavailable (%s)", exc)
            raise unavailable(exc) from None
        asker = ask.user if ask.show_asker else None
        question = blocks.shorten(ask.question, blocks.QUESTION_SHOWN_MAX)
        workspace = current() or Workspace(ask.team)  # the listener's: its installation answers
        started = time.time()
        pending = Placeholder(key=ask.key, team=ask.team, channel=ask.channel, ts="", user=ask.user,
                              question=question, posted_at=started, deadline=started + INTAKE_GRACE_S,
                              thread_ts=ask.thread_ts, asker=asker, response_url=ask.response_url,
                              doc_ts=ask.doc_ts or ask.thread_ts, asked_at=ask.asked_at,
                              enterprise_id=workspace.enterprise_id,
                              is_enterprise_install=workspace.is_enterprise_install)
        try:
            self._org_team(workspace, ask.team)
            self._tracker.expect(pending)
        except redis.RedisError as exc:
            log.warning("could not journal the intake: Redis unavailable (%s)", exc)
            raise unavailable(exc) from None
        try:
            return self._post_and_queue(ask, pending, waiting)
        finally:
            self._tracker.expected(ask.key)

    def _org_team(self, workspace: Workspace, team: str) -> None:
        """Before anything names `team` in Redis: a team of an org-wide install is listed under its
        org, so that the org's uninstall forgets it too (`explain_core.queue.purge`)."""
        if workspace.is_enterprise_install and workspace.enterprise_id:
            note_org_team(self._queue.redis, self._queue.keys, workspace.enterprise_id, team)

    @contextlib.contextmanager
    def taking(self, key: str, team: str, channel: str, user: str, thread_ts: str | None,
               question: str) -> Iterator[None]:
        """Journal a message's question while its documents are read, before `submit` journals it
        itself (a process killed while reading a file must not lose it in silence)."""
        now = time.time()
        workspace = current() or Workspace(team)
        pending = Placeholder(key=key, team=team, channel=channel, ts="", user=user,
                              question=blocks.shorten(question, blocks.QUESTION_SHOWN_MAX), posted_at=now,
                              deadline=now + INTAKE_GRACE_S, thread_ts=thread_ts, doc_ts=thread_ts, asked_at=now,
                              enterprise_id=workspace.enterprise_id,
                              is_enterprise_install=workspace.is_enterprise_install)
        try:
            self._org_team(workspace, team)
            self._tracker.expect(pending)
        except redis.RedisError as exc:  # submit says so, if the question gets that far
            log.warning("could not journal the question: Redis unavailable (%s)", exc)
        try:
            yield
        finally:
            self._tracker.expected(key)

    def _post_and_queue(self, ask: Ask, pending: Placeholder, waiting: int) -> bool:
        """Post the placeholder, record it, queue the job (the journal entry covers it until recorded).
        A question whose placeholder is recorded already is a second delivery that got past the
        first-delivery check (Redis was unreachable then): it posts nothing, since the first
        placeholder will show the question's one outcome."""
        try:
            owner = self._tracker.owner(ask.key)
        except redis.RedisError:
            owner = None  # the record below decides
        if owner is not None:
            log.info("job %s already has its placeholder %s; this delivery is a duplicate", ask.key, owner.ts)
            self._settled(ask.key, "duplicate")
            return False
        try:
            ts = self._replier.post(ask.channel, ask.thread_ts, blocks.placeholder(ask.question, pending.asker,
                                                                                   waiting),
                                    tag(ask.key), kind="placeholder",
                                    window_s=min(LISTENER_RETRY_S, self._replier.window_s))
        except SlackFailed as exc:
            raise _cannot_post(exc) from None
        now = time.time()
        self._metrics.to_placeholder.observe(max(0.0, now - ask.asked_at))
        step(log, "placeholder", ask.key, ts=ts, seconds=round(now - ask.asked_at, 3))
        placeholder = replace(pending, ts=ts, posted_at=now, deadline=now + self._deadline_s,
                              doc_ts=pending.doc_ts or ts)
        self._tracker.begin(placeholder)
        try:
            owner = self._tracker.track(placeholder)
        except redis.RedisError as exc:  # no job can exist yet: say so in the placeholder
            log.warning("could not record the placeholder of %s: Redis unavailable or refusing (%s)", ask.key, exc)
            self._tracker.drop(ask.key)
            refusal = unavailable(exc)
            self._settled(ask.key, refusal.code)
            self._refuse(placeholder, refusal.message)
            return False
        if owner is not None:
            log.info("job %s already has its placeholder %s; %s is a duplicate", ask.key, owner.ts, ts)
            self._tracker.drop(ask.key)
            self._settled(ask.key, "duplicate")
            self._refuse(placeholder, "You asked this already: the answer comes in my first reply.",
                         icon=":information_source:")
            return False
        return self._enqueue(ask, placeholder)

    def _enqueue(self, ask: Ask, placeholder: Placeholder) -> bool:
        try:
            queued = self._queue.enqueue(ask.key, ask.question, ask.passage, ask.options, placeholder.reply_to())
        except (Busy, Limited) as exc:
            return self._refused(ask, placeholder, exc)
        except redis.RedisError as exc:
            refusal = unavailable(exc)
            if refusal.code in WRITES_REFUSED:  # Redis ran nothing: surely not queued
                log.warning("enqueue of %s refused by Redis (%s)", ask.key, exc)
                return self._refused(ask, placeholder, refusal)
            log.warning("enqueue of %s failed: Redis unavailable (%s); the sweeper will settle it", ask.key, exc)
            self._tracker.mark(ask.key, Local.UNCERTAIN)
            return True
        # A duplicate here is this submit's own job: any other delivery of the same Slack request
        # lost the placeholder record above. It happens when redis-py repeats an enqueue whose
        # reply was lost, so it is the same job, with this placeholder in its reply address.
        step(log, "queued", ask.key, queued.job_id or ("repeated" if queued.duplicate else "held"), ahead=queued.ahead)
        self._tracker.mark(ask.key, Local.WAITING)
        try:
            self._recent.add(ask.team, ask.user, Asked(ask.key, placeholder.question, ask.channel, placeholder.ts,
                                                       placeholder.posted_at))
        except redis.RedisError as exc:  # the job is queued; only the App Home misses it
            log.warning("could not list the question on the asker's App Home: %s", exc)
        if ask.remember:
            try:
                self._documents.remember(ask.team, ask.channel, ask.thread_ts or placeholder.ts,
                                         Document(ask.passage, ask.sources,
                                                  private_to=ask.user if ask.private else None))
            except Unavailable:  # the job is queued; only follow-up questions lose the cache
                log.warning("could not cache the passage for the thread: Redis unavailable")
        return True

    def _refused(self, ask: Ask, placeholder: Placeholder, refusal: Refusal) -> bool:
        """The queue refused the job after its placeholder was posted: the placeholder says why. False."""
        try:
            self._outcomes.claim(ask.key, Outcome.REFUSED, refusal.code)  # nothing was queued; stops any stray answer
            claimed = True
        except redis.RedisError:
            claimed = False
        text = refusal.message[0].upper() + refusal.message[1:]  # Busy's and Limited's read as a clause
        if self._refuse(placeholder, text if text.endswith(".") else text + "."):
            if not claimed:
                self._settled(ask.key, refusal.code)
            self._tracker.forget(ask.key)
        else:  # the sweeper says it once Slack works, and counts what it says then
            self._tracker.mark(ask.key, Local.WAITING)
        return False

    def _refuse(self, placeholder: Placeholder, message: str, icon: str = ":warning:") -> bool:
        """Turn the placeholder into a refusal; False if no way to the asker worked (the
        placeholder then stays tracked and the sweeper says it later). The lease keeps another
        bot process's sweeper from saying it at the same time."""
        self._leases.take(placeholder.key)
        try:
            landing = self._replier.settle(placeholder.reply_to(), tag(placeholder.key),
                                           blocks.outcome(placeholder.question, placeholder.asker, message, icon),
                                           window_s=min(LISTENER_RETRY_S, self._replier.window_s),
                                           heartbeat=self._leases.renewer(placeholder.key))
        finally:
            self._leases.release(placeholder.key)
        if landing.how == "nowhere":
            return False
        self._metrics.shown("refused", placeholder.asked_at)
        step(log, "delivered", placeholder.key, how=landing.how)
        return True

    def tell(self, channel: str, user: str, thread_ts: str | None, message: blocks.Message,
             response_url: str | None = None) -> None:
        """A message only `user` sees (ephemeral, else through `response_url`); failures are
        logged, since there is no one else to tell."""
        try:
            self._replier.tell(channel, user, thread_ts, message, response_url,
                               window_s=min(LISTENER_RETRY_S, self._replier.window_s))
        except SlackFailed as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc.reason())


    def respond(self, response_url: str, message: blocks.Message) -> None:
        """A message only the asker sees, through their command's `response_url` (retried and
        counted like every reply); failures are logged, since there is no one else to tell."""
        try:
            self._replier.respond(response_url, message, window_s=min(LISTENER_RETRY_S, self._replier.window_s))
        except SlackFailed as exc:
            log.warning("could not answer through the response_url: %s", exc.reason())


def _cannot_post(exc: SlackFailed) -> Refusal:
    """Why there is no placeholder, for the asker: the conversation is closed to the bot, or
    Slack is failing (then nothing was queued, and asking again later works)."""
    if exc.failure.transient:
        return InputError("slack_failing", f"{exc.reason()}, so I couldn't take your question. "
                                           "Please ask again in a few minutes.")
    return InputError("cannot_post", f"I can't post here: {exc.reason()}.")
