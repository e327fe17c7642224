"""Feedback on answers: one vote per person per answer, counted, and exported for review.

A team reviews where the model fails from these records, so each vote carries what the
answer was made of (the job's key, model, method, confidence) and who voted, never the
passage or the answer text: votes outlive the documents (`Keys.FEEDBACK_RETENTION_S`).

Votes live in one hash, `(answer tag, voter)` -> the vote as JSON, so a second click by the
same person replaces the first. One Lua script records a vote, keeps the per-model counts
that the worker's /metrics reports, and drops votes past their retention (with their counts),
so the counts always equal the votes kept. `qa-feedback` writes them out as JSON Lines.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import redis

from explain_core import settings
from explain_core.codec import dumps, loads, to_object
from explain_core.queue.connect import RedisTarget
from explain_core.queue.keys import Keys
from explain_core.queue.protocol import JobQueue
from explain_core.settings import read_or_exit

HELPFUL = "helpful"
NOT_HELPFUL = "not_helpful"
VOTES = (HELPFUL, NOT_HELPFUL)
_PRUNE_BATCH = 100  # old votes dropped per new vote: enough to keep up, bounded work per click
_PAGE = 500  # votes read per round trip by an export

# KEYS: votes hash, votes by time, counts. ARGV: field, record, count field, now, cutoff, prune batch.
# Returns the voter's previous vote record, or false.
_VOTE = """
local function forget(record)
  local ok, old = pcall(cjson.decode, record)
  if ok and type(old.model) == 'string' and type(old.vote) == 'string' then
    redis.call('HINCRBY', KEYS[3], old.model .. '\t' .. old.vote, -1)
  end
end
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then forget(previous) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
for _, field in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5], 'LIMIT', 0, tonumber(ARGV[6]))) do
  local record = redis.call('HGET', KEYS[1], field)
  if record then forget(record) end
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
return previous
"""


@dataclass(frozen=True)
class Vote:
    """One person's vote on one answer. `tag` names the answer (its job's tag), `key` the job;
    `score` is the confidence the answer showed."""

    tag: str
    key: str
    voter: str
    team: str
    channel: str
    vote: str
    model: str
    method: str
    score: float
    no_answer: bool
    at: float

    def to_json(self) -> str:
        return dumps(to_object(self))

    @classmethod
    def from_json(cls, text: str) -> Vote:
        return loads(cls, text, "vote")


def count_field(model: str, vote: str) -> str:
    """Where a vote is counted: its model and its value, tab-separated (model names have no tabs).
    `_VOTE` builds the same field in Lua for the vote it replaces: change both together."""
    return f"{model}\t{vote}"


class Votes:
    """The votes of one namespace (see the module doc)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._record = client.register_script(_VOTE)

    def record(self, vote: Vote) -> Vote | None:
        """Store `vote`, replacing the voter's earlier vote on the same answer (returned)."""
        if vote.vote not in VOTES:
            raise ValueError(f"a vote is one of {VOTES}, not {vote.vote!r}")
        previous = self._record(keys=[self._keys.votes, self._keys.votes_at, self._keys.votes_count],
                                args=[f"{vote.tag}\t{vote.voter}", vote.to_json(), count_field(vote.model, vote.vote),
                                      vote.at, vote.at - Keys.FEEDBACK_RETENTION_S, _PRUNE_BATCH])
        return Vote.from_json(previous) if previous else None

    def counts(self) -> dict[tuple[str, str], int]:
        """Votes kept, by (model, vote)."""
        out = {}
        for field, value in self._redis.hgetall(self._keys.votes_count).items():
            model, _, vote = field.rpartition("\t")
            if int(value) > 0:
                out[(model, vote)] = int(value)
        return out

    def all(self, since: float = 0.0) -> Iterator[Vote]:
        """Every vote kept, oldest first, from `since` (Unix seconds); read in pages, so an
        export holds one page at a time."""
        start, seen_at_start = since, set[str]()
        while True:
            page = self._redis.zrangebyscore(self._keys.votes_at, start, "+inf", start=0,
                                             num=_PAGE + len(seen_at_start), withscores=True)
            fresh = [(f, at) for f, at in page if not (at == start and f in seen_at_start)]
            if not fresh:
                return
            for record in self._redis.hmget(self._keys.votes, [f for f, _ in fresh]):
                if record is not None:
                    yield Vote.from_json(record)
            # The next page starts at the last score read, inclusive, skipping what was read at it:
            # two votes may share a timestamp, and an exclusive bound would lose one of them.
            if start != fresh[-1][1]:
                seen_at_start = set()
            start = fresh[-1][1]
            seen_at_start |= {f for f, at in fresh if at == start}


def export(votes: Votes, out: TextIO, since: float = 0.0) -> int:
    """Write every vote from `since` as one JSON object per line; returns how many."""
    n = 0
    for vote in votes.all(since):
        out.write(vote.to_json() + "\n")
        n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """`qa-feedback`: the votes as JSON Lines on stdout (for a spreadsheet, jq or a notebook)."""

    parser = argparse.ArgumentParser(prog="qa-feedback", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=None,
                        help="only votes from the last DAYS days (default: all kept, up to 90 days)")
    args = parser.parse_args(argv)
    queue = JobQueue.connect(read_or_exit("qa-feedback", RedisTarget.from_env),
                             namespace=read_or_exit("qa-feedback", settings.namespace))
    since = time.time() - args.days * 86_400 if args.days is not None else 0.0
    try:
        n = export(Votes(queue.redis, queue.keys), sys.stdout, since)
    except redis.RedisError as exc:
        print(f"qa-feedback: Redis at {queue.where()} is unavailable ({exc})", file=sys.stderr)
        return 1
    print(f"qa-feedback: {n} vote(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
