"""The Redis Streams protocol between the bot (enqueues jobs, reads results) and the worker.

Both sides import this module, so it needs only `redis` (never TensorFlow). Key names and
TTLs live in `explain_core.queue.keys`. Delivery is at least once; the `done` marker and the
bot's `claim_once` turn that into "exactly one reply".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from explain_core import defaults
from explain_core.errors import Busy, Limited, SchemaError
from explain_core.queue.connect import RedisTarget, describe
from explain_core.queue.keys import WORKER_GROUP, Keys
from explain_core.queue.messages import DeadLetter, Job, JobOptions, JobResult, Progress, ReplyTo, WorkerInfo

log = logging.getLogger(__name__)

# Passages longer than this (JSON-encoded bytes) are stored once under their own key.
PASSAGE_INLINE_BYTES = 8 * 1024

T = TypeVar("T")

# Fair share: each asker (team:user) has at most one job in the jobs stream. Their further
# questions wait in their own list and join the tail of the stream one at a time, as the one
# before finishes, so the stream serves askers round robin and one person's backlog never sits
# in front of anyone else's first question. `push` is shared by both scripts below; `active`
# holds the stream id of the asker's job there, so a job the stream no longer has (trimmed by
# hand, evicted) frees its asker's place at the next question instead of holding it an hour.
# No MAXLEN here: the backlog cap is enforced at enqueue, and an approximate trim could drop
# an unfinished job.
# `order` ranks the job keys in the stream by their entry id, so that a job's place in line is
# one ZRANK (`JobQueue.ahead`); the finish script takes a job out of it with its entry.
# Between workspaces (a deployment serving many, issue 21), the same round robin one level up:
# `turn` lets an asker's turn into the stream only while their team has fewer than `cap` jobs
# there (the team's `slots`, a set of entry ids, pruned of ids the stream lost); otherwise the
# turn waits at the tail of the team's list (`twait`) and the asker's place says 'gate'. When a
# team's job finishes, the head of that list goes in first, so one team's many askers take turns
# with each other while other teams' first questions go straight in. An item carries its team's
# keys and cap (empty: one workspace, no gate), so a turn taken from a list knows where it goes.
_PUSH = """
local function push(jobs, order, item, active, held, stream_ttl, line_ttl)
  local f = cjson.decode(item)
  local id = redis.call('XADD', jobs, '*', 'job', f.job, 'key', f.key, 'active', active, 'held', held,
                        'load', f.load, 'tload', f.tload or '', 'slots', f.slots or '', 'twait', f.twait or '')
  redis.call('EXPIRE', jobs, stream_ttl)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  redis.call('ZADD', order, tonumber(ms) * 1000 + tonumber(seq), f.key)
  redis.call('EXPIRE', order, stream_ttl)
  if active ~= '' then redis.call('SET', active, id, 'EX', line_ttl) end
  if (f.slots or '') ~= '' then
    redis.call('SADD', f.slots, id)
    redis.call('EXPIRE', f.slots, line_ttl)
  end
  return id
end

local function turn(jobs, order, item, active, held, stream_ttl, line_ttl)
  local f = cjson.decode(item)
  if (f.slots or '') == '' then return push(jobs, order, item, active, held, stream_ttl, line_ttl) end
  for _, id in ipairs(redis.call('SMEMBERS', f.slots)) do
    if #redis.call('XRANGE', jobs, id, id) == 0 then redis.call('SREM', f.slots, id) end
  end
  if redis.call('SCARD', f.slots) < tonumber(f.cap) then
    return push(jobs, order, item, active, held, stream_ttl, line_ttl)
  end
  redis.call('RPUSH', f.twait, cjson.encode({item = item, active = active, held = held}))
  redis.call('EXPIRE', f.twait, line_ttl)
  if active ~= '' then redis.call('SET', active, 'gate', 'EX', line_ttl) end
  return false
end
"""

# Atomic so that a crash or a dropped connection can never leave the dedup key set without
# its job (the user's retry would be refused and the question lost), so that the limits
# cannot be raced past, and so that `ahead` is counted at the instant the job joins.
_ENQUEUE = _PUSH + """
-- KEYS: jobs stream, dedup key, passage key, asker's active key, asker's held list, channel load, order,
--       team load, team slots, team's waiting turns
-- ARGV: 1 job json, 2 dedup ttl, 3 max backlog, 4 stream ttl, 5 passage json or '', 6 payload ttl,
--       7 group, 8 job key, 9 now (s), 10 per-asker limit, 11 per-channel limit, 12 line ttl,
--       13 '1' if the job has an asker, 14 '1' if it has a channel, 15 per-team limit, 16 '1' if it has a team,
--       17 the team's slots in the stream ('0': no gate), 18 '1' if the job refers to a stored passage
if redis.call('EXISTS', KEYS[2]) == 1 then return {'duplicate'} end
local ahead = redis.call('XLEN', KEYS[1])
if ahead >= tonumber(ARGV[3]) then return {'full', ahead} end
local active, held, load, tload = '', '', '', ''
if ARGV[14] == '1' then
  load = KEYS[6]
  redis.call('ZREMRANGEBYSCORE', load, '-inf', ARGV[9])
  if redis.call('ZCARD', load) >= tonumber(ARGV[11]) then return {'channel_limit', ARGV[11]} end
end
if ARGV[16] == '1' then
  tload = KEYS[8]
  redis.call('ZREMRANGEBYSCORE', tload, '-inf', ARGV[9])
  if redis.call('ZCARD', tload) >= tonumber(ARGV[15]) then return {'team_limit', ARGV[15]} end
end
local running, waiting = false, 0
if ARGV[13] == '1' then
  active, held = KEYS[4], KEYS[5]
  local current = redis.call('GET', active)
  running = current == 'gate' or (current ~= false and #redis.call('XRANGE', KEYS[1], current, current) > 0)
  waiting = redis.call('LLEN', held)
  if (running and 1 or 0) + waiting >= tonumber(ARGV[10]) then return {'user_limit', ARGV[10]} end
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
elseif ARGV[18] == '1' and redis.call('EXPIRE', KEYS[3], ARGV[6]) == 0 then
  return {'passage'}  -- not stored (yet, or any more): the caller sends it
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[7], '0', 'MKSTREAM')
for _, counted in ipairs({load, tload}) do
  if counted ~= '' then
    redis.call('ZADD', counted, tonumber(ARGV[9]) + tonumber(ARGV[12]), ARGV[8])
    redis.call('EXPIRE', counted, ARGV[12])
  end
end
local gated = ARGV[16] == '1' and ARGV[17] ~= '0'
local item = cjson.encode({job = ARGV[1], key = ARGV[8], load = load, tload = tload,
                           slots = gated and KEYS[9] or '', twait = gated and KEYS[10] or '', cap = ARGV[17]})
if running or waiting > 0 then
  if not running then  -- the asker's job in the stream was lost: the oldest waiting one goes in
    turn(KEYS[1], KEYS[7], redis.call('LPOP', held), active, held, ARGV[4], ARGV[12])
    waiting = waiting - 1
  end
  redis.call('RPUSH', held, item)
  redis.call('EXPIRE', held, ARGV[12])
  return {'held', '', ahead + waiting + 1}
end
local id = turn(KEYS[1], KEYS[7], item, active, held, ARGV[4], ARGV[12])
if not id then return {'held', '', ahead + redis.call('LLEN', KEYS[10])} end
return {'queued', id, ahead}
"""

# Each job's place in line: its rank in `order`, else, at its team's gate, the jobs in the stream
# plus the team's turns before it (each turn list read and decoded once, however many ask).
# KEYS: order, then each job's team's turns list (or ''). ARGV: the job keys. -1: not in line.
_AHEAD = """
local in_stream = redis.call('ZCARD', KEYS[1])
local gates = {}
local out = {}
for i, key in ipairs(ARGV) do
  local rank = redis.call('ZRANK', KEYS[1], key)
  if not rank and KEYS[i + 1] ~= '' then
    local gate = gates[KEYS[i + 1]]
    if not gate then
      gate = {}
      for j, turn in ipairs(redis.call('LRANGE', KEYS[i + 1], 0, -1)) do
        local ok, waiting = pcall(cjson.decode, turn)
        local ok2, item = false, nil
        if ok then ok2, item = pcall(cjson.decode, waiting.item) end
        if ok2 and type(item.key) == 'string' then gate[item.key] = j - 1 end
      end
      gates[KEYS[i + 1]] = gate
    end
    if gate[key] then rank = in_stream + gate[key] end
  end
  out[i] = rank or -1
end
return out
"""

# Result (and dead letter) written, the asker's next question let into the stream, then the
# job acked and deleted, as one step. The `done` marker makes it idempotent: a retry after a
# lost reply, or a second worker that computed the same reclaimed job, acks without adding a
# second result or releasing a second question. Dead letters are trimmed by age (MINID), so
# a new failure never extends how long an old one is kept.
_FINISH = _PUSH + """
-- KEYS: jobs stream, results stream, dead stream, done marker, order
-- ARGV: 1 group, 2 job id, 3 result json or '', 4 dead letter json or '', 5 max len, 6 stream ttl,
--       7 marker ttl, 8 line ttl, 9 oldest dead letter id to keep
local first = redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[7])
if first then
  if ARGV[3] ~= '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'result', ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[6])
  end
  if ARGV[4] ~= '' then
    redis.call('XADD', KEYS[3], 'MINID', ARGV[9], '*', 'dead', ARGV[4])
    redis.call('XTRIM', KEYS[3], 'MAXLEN', '~', ARGV[5])
    redis.call('EXPIRE', KEYS[3], ARGV[6])
  end
  local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
  if entry then
    local f = {}
    for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
    if f.load and f.load ~= '' then redis.call('ZREM', f.load, f.key) end
    if f.tload and f.tload ~= '' then redis.call('ZREM', f.tload, f.key) end
    if f.key then redis.call('ZREM', KEYS[5], f.key) end
    if f.slots and f.slots ~= '' then  -- the team's slot frees: its longest-waiting turn goes in first
      redis.call('SREM', f.slots, ARGV[2])
      local waiting = redis.call('LPOP', f.twait)
      if waiting then
        local w = cjson.decode(waiting)
        push(KEYS[1], KEYS[5], w.item, w.active, w.held, ARGV[6], ARGV[8])
      end
    end
    if f.active and f.active ~= '' then
      local current = redis.call('GET', f.active)
      if current == ARGV[2] or not current then
        redis.call('DEL', f.active)
        local nxt = redis.call('LPOP', f.held)
        if nxt then turn(KEYS[1], KEYS[5], nxt, f.active, f.held, ARGV[6], ARGV[8]) end
      end
    end
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if first then return 1 end
return 0
"""


@dataclass(frozen=True)
class Enqueued:
    """`job_id` is None for a duplicate, and for a question held behind the asker's previous
    one (it joins the stream when that one finishes); `ahead` counts the jobs before it."""

    job_id: str | None
    ahead: int
    duplicate: bool


@dataclass(frozen=True)
class ResultEntry:
    """A result as delivered to the bot; ack `entry_id` once the reply is posted."""

    entry_id: str
    result: JobResult


@dataclass(frozen=True)
class JobEntry:
    """A job as delivered to a worker: the raw payload (decoded by the worker, which must
    dead-letter what it cannot read) and how many times Redis has delivered it."""

    entry_id: str
    payload: str
    deliveries: int


@dataclass(frozen=True)
class Finished:
    """What a worker hands back for one job: a result for the user and/or a dead letter."""

    entry_id: str
    result: JobResult | None
    dead: DeadLetter | None = None


@dataclass(frozen=True)
class QueueStats:
    """The health of the jobs stream: `waiting` not yet delivered, `in_progress` delivered
    but not finished (includes jobs of dead workers until reclaimed), `workers` alive (a
    heartbeat within their visibility timeout)."""

    waiting: int
    in_progress: int
    workers: int
    dead_letters: int
    results_waiting: int


def _asker(team: str | None, user: str | None) -> str | None:
    """Who a job's place in line belongs to; None for a caller that is not a Slack user."""
    return f"{team or '-'}:{user}" if user else None


def _channel(team: str | None, channel: str | None) -> str | None:
    return f"{team or '-'}:{channel}" if channel else None


def consumer_name() -> str:
    """Unique per process (host and pid), so every worker and every bot process is its own consumer."""
    return f"{socket.gethostname()}-{os.getpid()}"


class JobQueue:
    """One namespace of the protocol on one Redis; thread-safe (redis-py pools connections).

    The bot uses `enqueue`, `read_results`, `ack_result`, `claim_once`; the worker uses
    `read_jobs`, `reclaim_jobs`, `retry_job`, `passages`, `finish`. Streams have a single
    consumer group each ("workers" for jobs, the bot's for results), because finished
    entries are deleted.
    """

    def __init__(self, client: redis.Redis, namespace: str = defaults.NAMESPACE, *,
                 max_backlog: int = defaults.MAX_BACKLOG, result_reclaim_s: float = defaults.RESULT_RECLAIM_S,
                 max_per_user: int = defaults.MAX_PER_USER, max_per_channel: int = defaults.MAX_PER_CHANNEL,
                 max_per_team: int = defaults.MAX_PER_TEAM, team_slots: int = 0) -> None:
        self._client = client
        self.keys = Keys(namespace)
        self.max_backlog = max_backlog
        self.max_per_user = max_per_user
        self.max_per_channel = max_per_channel
        self.max_per_team = max_per_team
        self.team_slots = team_slots  # a team's jobs in the stream at once (see `_PUSH`); 0: no gate
        self.result_reclaim_ms = int(result_reclaim_s * 1000)
        self._enqueue = client.register_script(_ENQUEUE)
        self._finish = client.register_script(_FINISH)
        self._ahead = client.register_script(_AHEAD)
        self._groups: set[tuple[str, str]] = set()

    @classmethod
    def connect(cls, target: RedisTarget | str | None = None, namespace: str = defaults.NAMESPACE,
                **options: Any) -> JobQueue:
        """A queue on `target` (a URL is one server), else on the Redis the environment names
        (`RedisTarget.from_env`: REDIS_URL, or Sentinel). Blocking reads wait at most a few
        seconds, well inside the 30 s socket timeout."""
        if not isinstance(target, RedisTarget):
            target = RedisTarget(target) if target else RedisTarget.from_env()
        return cls(target.client(30, connect_timeout_s=5, health_check_interval=30), namespace, **options)

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    @property
    def redis(self) -> redis.Redis:
        """The client (str responses), for callers that keep their own namespaced keys."""
        return self._client

    def where(self) -> str:
        """Where the server is, for logs (never the URL: it may hold a password)."""
        return describe(self._client)

    # -- bot side ---------------------------------------------------------------------
    def admit(self, user: str | None, channel: str | None, team: str | None = None) -> None:
        """Raise `Limited` if this asker, channel or workspace already has its share of
        unanswered questions. A cheap check before anything is posted in Slack; `enqueue`
        enforces the same limits atomically, so a race past this check is still refused."""
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        asker, load = _asker(team, user), _channel(team, channel)
        if asker:
            pipe.exists(self.keys.active(asker))
            pipe.llen(self.keys.held(asker))
        if load:
            pipe.zcount(self.keys.channel_load(load), now, "+inf")
        if team:
            pipe.zcount(self.keys.team_load(team), now, "+inf")
        counts = pipe.execute()
        if asker and counts[0] + counts[1] >= self.max_per_user:
            raise Limited("user_limit", self.max_per_user)
        if load and counts[2 if asker else 0] >= self.max_per_channel:
            raise Limited("channel_limit", self.max_per_channel)
        if team and counts[-1] >= self.max_per_team:
            raise Limited("team_limit", self.max_per_team)

    def enqueue(self, key: str, question: str, passage: str, options: JobOptions,
                reply_to: ReplyTo) -> Enqueued:
        """Add a job unless `key` was enqueued in the last hour.

        Raises `Busy` when `max_backlog` jobs are unfinished, rather than letting the stream
        cap silently drop the oldest ones, and `Limited` when the asker (`reply_to.team` +
        `user`), the channel or the workspace (`reply_to.team`) is at its limit. An asker's job beyond their first waits
        outside the stream until the one before it finishes (see `_PUSH`).
        """
        if not key:
            raise ValueError("enqueue needs a non-empty idempotency key")
        stored = json.dumps(passage)
        ref = None
        if len(stored) > PASSAGE_INLINE_BYTES:
            digest = hashlib.sha256(passage.encode("utf-8", "surrogatepass")).hexdigest()
            ref = self.keys.passage(digest)
        job = Job(key=key, question=question, options=options, reply_to=reply_to, enqueued_at=time.time(),
                  passage=None if ref else passage, passage_ref=ref)
        asker, load = _asker(reply_to.team, reply_to.user), _channel(reply_to.team, reply_to.channel)

        def push(sent: str) -> list[Any]:
            return self._enqueue(
                keys=[self.keys.jobs, self.keys.dedup(key), ref or self.keys.passage("-"),
                      self.keys.active(asker or "-"), self.keys.held(asker or "-"),
                      self.keys.channel_load(load or "-"), self.keys.order, self.keys.team_load(reply_to.team or "-"),
                      self.keys.slots(reply_to.team or "-"), self.keys.turns(reply_to.team or "-")],
                args=[job.to_json(), Keys.DEDUP_TTL_S, self.max_backlog, Keys.STREAM_TTL_S, sent,
                      Keys.PAYLOAD_TTL_S, WORKER_GROUP, key, time.time(), self.max_per_user, self.max_per_channel,
                      Keys.LINE_TTL_S, "1" if asker else "0", "1" if load else "0", self.max_per_team,
                      "1" if reply_to.team else "0", self.team_slots, "1" if ref else "0"])

        # A large passage goes to Redis once: a follow-up question about the same document refers
        # to the stored copy (and keeps it), and sends the text only when it is not there.
        reply = push("")
        if reply[0] == "passage":
            reply = push(stored)
        if reply[0] == "duplicate":
            return Enqueued(job_id=None, ahead=0, duplicate=True)
        if reply[0] == "full":
            raise Busy(int(reply[1]))
        if reply[0] in ("user_limit", "channel_limit", "team_limit"):
            raise Limited(reply[0], int(reply[1]))
        return Enqueued(job_id=reply[1] or None, ahead=int(reply[2]), duplicate=False)

    def ahead(self, keys: list[str], teams: list[str | None] | None = None) -> list[int | None]:
        """For each job key, how many unfinished jobs are before it in the stream (those being
        computed included); with its team (`teams`, many workspaces), a job waiting at its team's
        gate counts the stream's jobs and its team's turns before its own (see `_PUSH`). None for
        a job not in line (waiting behind its asker's earlier question, finished, or lost)."""
        if not keys:
            return []
        turns = [self.keys.turns(team) if team else "" for team in (teams or [None] * len(keys))]
        found = self._ahead(keys=[self.keys.order, *turns], args=keys)
        return [None if rank < 0 else int(rank) for rank in found]

    def known(self, key: str) -> bool:
        """Whether Redis still has a trace of the job enqueued under `key` (its dedup marker
        lives an hour): False means it was never queued or Redis lost it (a restart without
        persistence), and its asker must be told."""
        return bool(self._client.exists(self.keys.dedup(key)))

    def read_results(self, group: str, consumer: str, count: int = 10, block_ms: int = 1000) -> list[ResultEntry]:
        """Results for `consumer` of the bot's `group`: first those a dead consumer left
        unacked for `result_reclaim_s`, else new ones (blocking up to `block_ms`).

        A result that cannot be decoded is logged and acked, so it cannot block the stream.
        """
        entries = self._in_group(self.keys.results, group, lambda: self._autoclaim(
            self.keys.results, group, consumer, self.result_reclaim_ms, count))
        if not entries:
            entries = self._in_group(self.keys.results, group, lambda: self._read(
                self.keys.results, group, consumer, count, block_ms))
        out = []
        for entry_id, fields in entries:
            try:
                out.append(ResultEntry(entry_id, JobResult.from_json(fields.get("result", ""))))
            except SchemaError as exc:
                log.error("dropping result %s that cannot be read: %s", entry_id, exc)
                self.ack_result(group, entry_id)
        return out

    def ack_result(self, group: str, entry_id: str) -> None:
        """The reply is posted: forget the result (it holds the user's answer and picture)."""
        pipe = self._client.pipeline(transaction=True)
        pipe.xack(self.keys.results, group, entry_id)
        pipe.xdel(self.keys.results, entry_id)
        pipe.execute()

    def claim_once(self, marker: str, ttl_s: int = Keys.ONCE_TTL_S, token: str = "") -> bool:
        """True for the first caller with this marker within `ttl_s`, False for every later one.

        A caller's own `token` (unique to it) is stored with the claim, so that redis-py repeating
        the command after a lost reply still reads as that caller's claim, not as another's."""
        if not token:
            return bool(self._client.set(self.keys.once(marker), "1", nx=True, ex=ttl_s))
        previous = self._client.set(self.keys.once(marker), token, nx=True, ex=ttl_s, get=True)
        return previous is None or previous == token

    def release_once(self, marker: str) -> None:
        """Undo a `claim_once` whose work did not happen, so a later caller may do it."""
        self._client.delete(self.keys.once(marker))

    # -- worker side ------------------------------------------------------------------
    def read_jobs(self, consumer: str, count: int, block_ms: int) -> list[JobEntry]:
        """New jobs for this worker (first delivery), blocking up to `block_ms`."""
        entries = self._in_group(self.keys.jobs, WORKER_GROUP, lambda: self._read(
            self.keys.jobs, WORKER_GROUP, consumer, count, block_ms))
        return [JobEntry(entry_id, fields.get("job", ""), 1) for entry_id, fields in entries]

    def reclaim_jobs(self, consumer: str, min_idle_ms: int, count: int) -> list[JobEntry]:
        """Take over jobs delivered to a worker that has not finished them for `min_idle_ms`
        (it died, or hangs), with their delivery counts (this delivery included)."""
        entries = self._in_group(self.keys.jobs, WORKER_GROUP, lambda: self._autoclaim(
            self.keys.jobs, WORKER_GROUP, consumer, min_idle_ms, count))
        self._forget_dead_workers(min_idle_ms)
        if not entries:
            return []
        pipe = self._client.pipeline(transaction=False)
        for entry_id, _fields in entries:
            pipe.xpending_range(self.keys.jobs, WORKER_GROUP, min=entry_id, max=entry_id, count=1)
        counts = [rows[0]["times_delivered"] if rows else 1 for rows in pipe.execute()]
        return [JobEntry(entry_id, fields.get("job", ""), n) for (entry_id, fields), n in zip(entries, counts)]

    def retry_job(self, consumer: str, entry: JobEntry) -> JobEntry | None:
        """Deliver a failed job again to this worker now (its delivery count goes up by one,
        so a job that keeps failing reaches `max_attempts`). None if it is no longer pending."""
        claimed = self._client.xclaim(self.keys.jobs, WORKER_GROUP, consumer, 0, [entry.entry_id])
        if not claimed or claimed[0][1] is None:
            return None
        return JobEntry(entry.entry_id, claimed[0][1].get("job", ""), entry.deliveries + 1)

    def passages(self, jobs: list[Job]) -> list[str | None]:
        """The passage of each job: inline, or fetched by reference (None if it expired)."""
        refs = [job.passage_ref for job in jobs if job.passage_ref is not None]
        fetched = iter(self._client.mget(refs) if refs else [])
        out: list[str | None] = []
        for job in jobs:
            if job.passage_ref is None:
                out.append(job.passage)
            else:
                stored = next(fetched)
                out.append(json.loads(stored) if stored is not None else None)
        return out

    def finish(self, finished: list[Finished]) -> list[bool]:
        """Write each result/dead letter and ack its job, one round trip for the batch.

        Per job this is atomic and idempotent; the returned flags say which jobs got their
        result from this call (False: another delivery of the same job got there first).
        """
        oldest_dead = f"{int((time.time() - Keys.DEAD_RETENTION_S) * 1000)}-0"
        pipe = self._client.pipeline(transaction=False)
        for item in finished:
            self._finish(
                keys=[self.keys.jobs, self.keys.results, self.keys.dead,
                      self.keys.done(item.entry_id), self.keys.order],
                args=[WORKER_GROUP, item.entry_id, item.result.to_json() if item.result else "",
                      item.dead.to_json() if item.dead else "", self.max_backlog, Keys.STREAM_TTL_S,
                      Keys.PAYLOAD_TTL_S, Keys.LINE_TTL_S, oldest_dead],
                client=pipe)
        return [bool(flag) for flag in pipe.execute()]

    def _forget_dead_workers(self, min_idle_ms: int) -> None:
        """Remove workers silent for `min_idle_ms` that hold no job (a live worker reads every
        `QA_BLOCK_MS`; a killed one's jobs have just been reclaimed), so the group lists the
        living and `qa-worker --check` tells the truth."""
        for row in self._client.xinfo_consumers(self.keys.jobs, WORKER_GROUP):
            # A heartbeat means it is alive: it may read between our XINFO and the delete, and
            # deleting it would drop what it just read from the pending list.
            if row["pending"] == 0 and row["idle"] >= min_idle_ms and not self._client.exists(
                    self.keys.worker(row["name"])):
                self._client.xgroup_delconsumer(self.keys.jobs, WORKER_GROUP, row["name"])

    def heartbeat(self, consumer: str, ttl_s: float, info: WorkerInfo | None = None) -> None:
        """This worker is alive for `ttl_s` more seconds (its visibility timeout: after that its
        jobs are taken over anyway), offering `info`. Redis lists a consumer only once it has been
        delivered something, so a live idle worker is known by this key, not by the group."""
        self._client.set(self.keys.worker(consumer), info.to_json() if info else "1", px=max(1, int(ttl_s * 1000)))

    def workers(self) -> list[WorkerInfo]:
        """What each live worker offers (one entry per worker; one without info is skipped)."""
        names = list(self._client.scan_iter(self.keys.worker("*"), count=1000))
        infos = []
        for value in self._client.mget(names) if names else []:
            if value is None:
                continue  # gone since the scan
            try:
                infos.append(WorkerInfo.from_json(value))
            except SchemaError:
                continue  # an older worker's bare "1"
        return infos

    def publish_progress(self, events: list[Progress]) -> None:
        """Tell the bots where jobs are (see `Progress`); the stream is capped, as they are hints."""
        if not events:
            return
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.keys.progress, {"progress": event.to_json()}, maxlen=Keys.PROGRESS_MAX, approximate=True)
        pipe.expire(self.keys.progress, Keys.STREAM_TTL_S)
        pipe.execute()

    def progress_position(self) -> str:
        """The id of the latest progress event, for a reader that starts now."""
        try:
            return str(self._client.xinfo_stream(self.keys.progress)["last-generated-id"])
        except redis.ResponseError:  # no stream yet
            return "0-0"

    def read_progress(self, after: str, block_ms: int, count: int = 500) -> tuple[str, list[Progress]]:
        """Progress published after stream id `after`, and the id to read on from; waits up to
        `block_ms` for news (0: not at all). Every reader sees every event (no group): each bot
        process edits the placeholders it posted."""
        events = []
        reply = self._client.xread({self.keys.progress: after}, count=count, block=block_ms or None)
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                after = entry_id
                try:
                    events.append(Progress.from_json(fields.get("progress", "")))
                except SchemaError as exc:
                    log.warning("skipping progress %s that cannot be read: %s", entry_id, exc)
        return after, events

    def leave(self, consumer: str) -> None:
        """Remove a worker from the group, unless it still holds jobs (deleting a consumer
        would drop its pending entries, and with them the only trace of those jobs)."""
        self._client.delete(self.keys.worker(consumer))
        if not self._in_group(self.keys.jobs, WORKER_GROUP, lambda: self._client.xpending_range(
                self.keys.jobs, WORKER_GROUP, "-", "+", 1, consumername=consumer)):
            self._client.xgroup_delconsumer(self.keys.jobs, WORKER_GROUP, consumer)

    # -- operations -------------------------------------------------------------------
    def depth(self) -> int:
        """Jobs not finished (waiting or in progress): finished ones are deleted from the stream."""
        return int(self._client.xlen(self.keys.jobs))

    def oldest_age_s(self) -> float:
        """Seconds since the oldest unfinished job joined the stream (its id is its time), 0 when
        none: what an operator watches to see a queue that is not served. A question held behind
        its asker's earlier one joins the stream when that one finishes."""
        first = self._client.xrange(self.keys.jobs, count=1)
        if not first:
            return 0.0
        return max(0.0, time.time() - int(str(first[0][0]).partition("-")[0]) / 1000)

    def held(self) -> int:
        """Questions waiting outside the stream behind their asker's earlier one (a SCAN of the
        held lists, as `stats` counts workers: for a scrape, not for a hot path)."""
        pipe = self._client.pipeline(transaction=False)
        for key in self._client.scan_iter(self.keys.held("*"), count=1000):
            pipe.llen(key)
        return sum(int(n) for n in pipe.execute())

    def stats(self) -> QueueStats:
        self._ensure_group(self.keys.jobs, WORKER_GROUP)
        pipe = self._client.pipeline(transaction=False)
        pipe.xlen(self.keys.jobs)
        pipe.xinfo_groups(self.keys.jobs)
        pipe.xlen(self.keys.dead)
        pipe.xlen(self.keys.results)
        length, groups, dead, results = pipe.execute()
        group = next(g for g in groups if g["name"] == WORKER_GROUP)
        workers = sum(1 for _ in self._client.scan_iter(self.keys.worker("*"), count=1000))
        return QueueStats(waiting=length - group["pending"], in_progress=group["pending"],
                          workers=workers, dead_letters=dead, results_waiting=results)

    def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""
        return [DeadLetter.from_json(fields["dead"])
                for _id, fields in self._client.xrevrange(self.keys.dead, count=count)]

    # -- plumbing ---------------------------------------------------------------------
    def _ensure_group(self, stream: str, group: str) -> None:
        """Create the group at the start of the stream, so nothing enqueued before the first
        consumer started is skipped; the stream it may create gets the streams' TTL."""
        if (stream, group) in self._groups:
            return
        try:
            self._client.xgroup_create(stream, group, id="0", mkstream=True)
            self._client.expire(stream, Keys.STREAM_TTL_S, nx=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((stream, group))

    def _in_group(self, stream: str, group: str, call: Callable[[], T]) -> T:
        """Run a group command, recreating the group if Redis lost it (restart without
        persistence, or the stream expired while idle) instead of failing forever."""
        self._ensure_group(stream, group)
        try:
            return call()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no longer exists" not in str(exc):
                raise
            log.warning("consumer group %s of %s was gone; recreating it", group, stream)
            self._groups.discard((stream, group))
            self._ensure_group(stream, group)
            return call()

    def _read(self, stream: str, group: str, consumer: str, count: int,
              block_ms: int) -> list[tuple[str, dict[str, str]]]:
        reply = self._client.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
        return [entry for _stream, entries in reply or [] for entry in entries]

    def _autoclaim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                   count: int) -> list[tuple[str, dict[str, str]]]:
        """XAUTOCLAIM from the start of the pending list; entries trimmed away meanwhile
        (Redis reports their ids) are acked, since nobody can ever process them."""
        _cursor, claimed, deleted = self._client.xautoclaim(stream, group, consumer, min_idle_ms, "0-0",
                                                            count=count)
        if deleted:
            log.warning("%d pending entries of %s were trimmed before being processed", len(deleted), stream)
            self._client.xack(stream, group, *deleted)
        return claimed
