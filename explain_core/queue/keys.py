"""Every Redis key of one namespace and how long it lives, in one place (as RQ's classes own theirs).

Layout under a namespace `ns` (QA_NAMESPACE, default "qa"):

    ns:jobs                      stream of jobs; consumer group "workers"; an entry is deleted once
                                 its result is written, so XLEN is exactly the number of jobs not done
    ns:results                   stream of results; the bot's consumer group "bot"; deleted once acked
    ns:dead                      dead-letter stream: jobs given up on, for an operator
    ns:dedup:<key>               the caller's idempotency key: a retried request is refused
    ns:passage:<sha256>          a large passage, stored once (content address), referenced by jobs
    ns:done:<job id>             written with the result, so a job computed twice yields one result
    ns:worker:<consumer>         a live worker's heartbeat, for `qa-worker --check` (TTL: its visibility timeout)
    ns:active:<team>:<user>      the stream id of the one job of this asker in the jobs stream
    ns:held:<team>:<user>        list: this asker's further questions, waiting outside the stream
                                 (fair share: each asker has at most one job in the stream)
    ns:load:<team>:<channel>     sorted set: unanswered job keys of a channel, scored by expiry
    ns:once:<marker>             `claim_once` markers (a Slack event taken, a picture uploaded)
    ns:reply:<key>               the bot: the placeholder posted for a job (where, for whom, its deadline);
                                 written once before the job is queued, so it also names the job's owner
    ns:replies                   the bot: sorted set of job keys whose placeholder awaits its final
                                 state, scored by deadline (the sweeper's work list)
    ns:outcome:<key>             the bot: who gave the question its one final outcome (answer, refused,
                                 lost, timeout, ...); SET NX, so a late answer never follows a failure
    ns:delivering:<key>          the bot: a short lease held while a result is being delivered, so a
                                 consumer that reclaims it meanwhile leaves it to the one still working
    ns:doc:<team>:<channel>:<ts> the bot: a thread's document, for follow-up questions (QA_DOC_CACHE_TTL_S)
    ns:shortcut:<team>:<ch>:<ts> the bot: the message a shortcut's form asks about, until submitted

Every key has a TTL (streams: refreshed on each write) and the streams are capped, so Redis
memory stays bounded whatever happens to the consumers.
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
    REPLY_TTL_S: ClassVar[int] = 86_400  # placeholder records and outcomes outlive any deadline
    LEASE_TTL_S: ClassVar[int] = 120  # a delivery renews its lease at least every minute
    STASH_TTL_S: ClassVar[int] = 3600  # a form left open longer fetches the message again
    # An asker's place in line (active, held, channel load): refreshed by each question and freed
    # when its job finishes; the TTL only frees the place of a job Redis lost.
    LINE_TTL_S: ClassVar[int] = 3600
    DEAD_RETENTION_S: ClassVar[int] = 7 * 86_400  # each dead letter (no passage text) for a week

    @property
    def jobs(self) -> str:
        return f"{self.namespace}:jobs"

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

    def once(self, marker: str) -> str:
        return f"{self.namespace}:once:{marker}"

    def reply(self, job_key: str) -> str:
        return f"{self.namespace}:reply:{job_key}"

    @property
    def replies(self) -> str:
        return f"{self.namespace}:replies"

    def outcome(self, job_key: str) -> str:
        return f"{self.namespace}:outcome:{job_key}"

    def delivering(self, job_key: str) -> str:
        return f"{self.namespace}:delivering:{job_key}"

    def document(self, team: str, channel: str, root_ts: str) -> str:
        return f"{self.namespace}:doc:{team}:{channel}:{root_ts}"

    def stash(self, team: str, channel: str, ts: str) -> str:
        return f"{self.namespace}:shortcut:{team}:{channel}:{ts}"
