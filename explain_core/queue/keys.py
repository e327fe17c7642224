"""Every Redis key of one namespace and how long it lives, in one place (as RQ's classes own theirs).

Layout under a namespace `ns` (QA_NAMESPACE, default "qa"):

    ns:jobs                      stream of jobs; consumer group "workers"; an entry is deleted once
                                 its result is written, so XLEN is exactly the number of jobs not done
    ns:order                     sorted set: the keys of the jobs in ns:jobs by entry id (a job's place in line)
    ns:results                   stream of results; the bot's consumer group "bot"; deleted once acked
    ns:dead                      dead-letter stream: jobs given up on, for an operator
    ns:dedup:<key>               the caller's idempotency key: a retried request is refused
    ns:passage:<sha256>          a large passage, stored once (content address), referenced by jobs
    ns:done:<job id>             written with the result, so a job computed twice yields one result
    ns:worker:<consumer>         a live worker's heartbeat and what it offers (`WorkerInfo`), for `qa-worker --check`
                                 and the App Home (TTL: its visibility timeout)
    ns:progress                  stream of `Progress` (running, windows read), capped; each bot process reads it
                                 whole and edits the placeholders it posted
    ns:active:<team>:<user>      the stream id of the one job of this asker in the jobs stream
    ns:held:<team>:<user>        list: this asker's further questions, waiting outside the stream
                                 (fair share: each asker has at most one job in the stream)
    ns:load:<team>:<channel>     sorted set: unanswered job keys of a channel, scored by expiry
    ns:team:<team>               sorted set: unanswered job keys of a workspace, scored by expiry
    ns:slots:<team>              many workspaces: set of the stream ids of the workspace's jobs in ns:jobs (at most
                                 QA_TEAM_SLOTS); ns:turns:<team> list: its askers' turns waiting for a slot
    ns:once:<marker>             `claim_once` markers (a Slack event taken, a slash command or form submission taken
                                 and its replay told, a picture uploaded)
    ns:reply:<key>               the bot: the placeholder posted for a job (where, for whom, its deadline);
                                 written once before the job is queued, so it also names the job's owner
    ns:intake:<key>              the bot: a question between its acknowledgement and its placeholder's record
                                 (who asked, where), so that another process tells the asker if this one dies then
    ns:intakes                   the bot: sorted set of those keys, scored by when the sweeper should look
    ns:replies                   the bot: sorted set of job keys whose placeholder awaits its final
                                 state, scored by deadline (the sweeper's work list)
    ns:outcome:<key>             the bot: who gave the question its one final outcome (answer, failed,
                                 refused, lost, timeout, ...); SET NX, so a late answer never follows a failure
    ns:delivering:<key>          the bot: a short lease held while a result is being delivered, so a
                                 consumer that reclaims it meanwhile leaves it to the one still working
    ns:doc:<team>:<channel>:<ts> the bot: a thread's document, for follow-up questions (QA_DOC_CACHE_TTL_S)
    ns:answer:<tag>              the bot: what an answer's buttons need (question, model, the top answers and their
                                 sentences; not the passage),
                                 by the job's tag (QA_DOC_CACHE_TTL_S, like the document its buttons reread)
    ns:recent:<team>:<user>      the bot: list of a person's latest questions, for their App Home
    ns:edit:<key>                the bot: held while a progress edit of a placeholder is in flight, so the final
                                 reply is never overwritten by a status line
    ns:votes                     hash: one feedback vote per (answer tag, voter), no passage text
    ns:votes:at                  sorted set: the same fields by time, to drop votes past FEEDBACK_RETENTION_S
    ns:votes:count               hash: votes kept, by model and vote (the Prometheus gauge)
    ns:shortcut:<team>:<ch>:<ts> the bot: the message a shortcut's form asks about, until submitted
    ns:org:<enterprise>          the bot: set of the teams that asked through an org-wide install, so that
                                 the org's uninstall forgets them (explain_core/queue/purge.py)

Every key has a TTL (streams: refreshed on each write) and the streams are capped, so Redis
memory stays bounded whatever happens to the consumers. The votes are the exception that a
team keeps on purpose: each is dropped `FEEDBACK_RETENTION_S` after it was cast, and there is
at most one per person per answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from explain_core import defaults

WORKER_GROUP = "workers"
RESULTS_GROUP = "bot"


@dataclass(frozen=True)
class Keys:
    """The key names of one namespace and their TTLs; the one TTL an operator sets, a thread
    document's (QA_DOC_CACHE_TTL_S), is the bot's setting."""

    namespace: str = defaults.NAMESPACE

    DEDUP_TTL_S: ClassVar[int] = 3600  # Slack retries within minutes; an hour is ample
    PAYLOAD_TTL_S: ClassVar[int] = 86_400  # passages by reference and done markers outlive any backlog
    STREAM_TTL_S: ClassVar[int] = 7 * 86_400  # streams of an idle deployment go away after a week
    ONCE_TTL_S: ClassVar[int] = 86_400  # a result is redelivered within a day or never
    EVENT_TTL_S: ClassVar[int] = 3600  # Slack retries an event for minutes only
    # A signed request (a slash command, a form submission) is accepted for 5 minutes after its timestamp
    # (Bolt's check); one more minute covers a clock of ours running behind Slack's. Its copies within
    # that window are replays, which a `once` marker of this TTL catches.
    REQUEST_TTL_S: ClassVar[int] = 360
    REPLY_TTL_S: ClassVar[int] = 86_400  # placeholder records and outcomes outlive any deadline
    LEASE_TTL_S: ClassVar[int] = 120  # a delivery renews its lease at least every minute
    STASH_TTL_S: ClassVar[int] = 3600  # a form left open longer fetches the message again
    # An asker's place in line (active, held, channel load): refreshed by each question and freed
    # when its job finishes; the TTL only frees the place of a job Redis lost.
    LINE_TTL_S: ClassVar[int] = 3600
    DEAD_RETENTION_S: ClassVar[int] = 7 * 86_400  # each dead letter (no passage text) for a week
    FEEDBACK_RETENTION_S: ClassVar[int] = 90 * 86_400  # votes (no passage text): a quarter to review them
    PROGRESS_MAX: ClassVar[int] = 10_000  # progress events kept (approximate trim: they are only hints)
    EDIT_LOCK_MS: ClassVar[int] = 15_000  # longer than a status edit's timeouts (5 s per socket operation)
    RECENT_KEPT: ClassVar[int] = 10  # questions listed on a person's App Home

    @property
    def jobs(self) -> str:
        return f"{self.namespace}:jobs"

    @property
    def order(self) -> str:
        return f"{self.namespace}:order"

    @property
    def results(self) -> str:
        return f"{self.namespace}:results"

    @property
    def dead(self) -> str:
        return f"{self.namespace}:dead"

    def dedup(self, key: str) -> str:
        return f"{self.namespace}:dedup:{key}"

    def passage(self, digest: str) -> str:
        return f"{self.namespace}:passage:{digest}"

    def done(self, job_id: str) -> str:
        return f"{self.namespace}:done:{job_id}"

    def worker(self, consumer: str) -> str:
        return f"{self.namespace}:worker:{consumer}"

    def active(self, owner: str) -> str:
        return f"{self.namespace}:active:{owner}"

    def held(self, owner: str) -> str:
        return f"{self.namespace}:held:{owner}"

    def channel_load(self, channel: str) -> str:
        return f"{self.namespace}:load:{channel}"

    def team_load(self, team: str) -> str:
        return f"{self.namespace}:team:{team}"

    def slots(self, team: str) -> str:
        return f"{self.namespace}:slots:{team}"

    def turns(self, team: str) -> str:
        return f"{self.namespace}:turns:{team}"

    def once(self, marker: str) -> str:
        return f"{self.namespace}:once:{marker}"

    def reply(self, job_key: str) -> str:
        return f"{self.namespace}:reply:{job_key}"

    def intake(self, job_key: str) -> str:
        return f"{self.namespace}:intake:{job_key}"

    @property
    def intakes(self) -> str:
        return f"{self.namespace}:intakes"

    @property
    def replies(self) -> str:
        return f"{self.namespace}:replies"

    def outcome(self, job_key: str) -> str:
        return f"{self.namespace}:outcome:{job_key}"

    def delivering(self, job_key: str) -> str:
        return f"{self.namespace}:delivering:{job_key}"

    @property
    def progress(self) -> str:
        return f"{self.namespace}:progress"

    def answer(self, tag: str) -> str:
        return f"{self.namespace}:answer:{tag}"

    def recent(self, team: str, user: str) -> str:
        return f"{self.namespace}:recent:{team}:{user}"

    def edit(self, job_key: str) -> str:
        return f"{self.namespace}:edit:{job_key}"

    @property
    def votes(self) -> str:
        return f"{self.namespace}:votes"

    @property
    def votes_at(self) -> str:
        return f"{self.namespace}:votes:at"

    @property
    def votes_count(self) -> str:
        return f"{self.namespace}:votes:count"

    def document(self, team: str, channel: str, root_ts: str) -> str:
        return f"{self.namespace}:doc:{team}:{channel}:{root_ts}"

    def org_teams(self, enterprise: str) -> str:
        return f"{self.namespace}:org:{enterprise}"

    def stash(self, team: str, channel: str, ts: str) -> str:
        return f"{self.namespace}:shortcut:{team}:{channel}:{ts}"
