"""Forget a team (or an org's teams): every key, field, member and item of a namespace that names it.

When a workspace uninstalls the app, what the bot kept of it (thread documents, answers'
records, recent questions, held questions, placeholders' records, votes) must go at once, not
when its TTL runs out. Votes go through `Votes.drop`, which lowers their counts with them.
Each of the rest names its team, in the key (`Keys.document`,
`Keys.recent`, `Keys.held`, ...) or in the JSON it holds (`"team": ...`), so one scan of the
namespace finds them all, whatever key a later change adds: a key whose name holds the team id
is deleted, and in other keys the values that hold it.

An org-wide (Enterprise Grid) install answers many teams under one installation, and what the
bot keeps names each team, not the org: `note_org_team` remembers which teams of an org asked
(a set that lives as long as the longest-kept record, the votes), so that the org's uninstall
(`forget_org`) forgets them all, and whatever names the org itself.

The jobs and results streams are left to the consumer groups that read them: a job a worker
may hold right now is not pulled from under it (the bot drops its result unposted, and
deletes it on ack). Other streams (dead letters, progress) lose the team's entries. Passages
stored by reference are found through the jobs that refer to them and deleted, so the worker
answers those jobs with an error nobody sees.
"""
from __future__ import annotations

import re
from collections import Counter

import redis

from explain_core.queue.feedback import Votes
from explain_core.queue.keys import Keys
from explain_core.queue.messages import Job

SCAN_COUNT = 500


def forget_team(client: redis.Redis, keys: Keys, *teams: str) -> Counter[str]:
    """Delete what `client`'s namespace `keys` keeps of `teams` (see the module doc), in one scan;
    returns how many votes, keys, fields, members, items and passages went, by kind."""
    if not teams:
        return Counter()
    either = "|".join(re.escape(team) for team in teams)
    names = re.compile(rf"(?<![A-Za-z0-9])(?:{either})(?![A-Za-z0-9])")
    removed: Counter[str] = Counter()
    removed["votes"] = Votes(client, keys).drop(set(teams))  # with their counts, which name no team
    for key in client.scan_iter(match=f"{keys.namespace}:*", count=SCAN_COUNT):
        if key in (keys.votes, keys.votes_at, keys.votes_count):
            continue
        if names.search(key):
            removed["keys"] += client.delete(key)
            continue
        kind = client.type(key)
        if kind == "string":
            value = client.get(key)
            if value is not None and names.search(value):
                removed["keys"] += client.delete(key)
        elif kind == "hash":
            fields = [f for f, v in client.hscan_iter(key, count=SCAN_COUNT) if names.search(f) or names.search(v)]
            if fields:
                removed["fields"] += client.hdel(key, *fields)
        elif kind == "zset":
            members = [m for m, _score in client.zscan_iter(key, count=SCAN_COUNT) if names.search(m)]
            if members:
                removed["members"] += client.zrem(key, *members)
        elif kind == "list":
            for item in {i for i in client.lrange(key, 0, -1) if names.search(i)}:
                removed["items"] += client.lrem(key, 0, item)
        elif kind == "stream" and key == keys.jobs:
            removed["passages"] += _passages_of(client, key, names)
        elif kind == "stream" and key != keys.results:  # no consumer group reads these: the dead letters, progress
            entries = [entry_id for entry_id, fields in client.xrange(key)
                       if any(names.search(v) for v in fields.values())]
            if entries:
                removed["entries"] += client.xdel(key, *entries)
    return removed


def note_org_team(client: redis.Redis, keys: Keys, enterprise: str, team: str) -> None:
    """`team` asked through org `enterprise`'s org-wide install (see the module doc)."""
    pipe = client.pipeline(transaction=False)
    pipe.sadd(keys.org_teams(enterprise), team)
    pipe.expire(keys.org_teams(enterprise), Keys.FEEDBACK_RETENTION_S)
    pipe.execute()


def forget_org(client: redis.Redis, keys: Keys, enterprise: str) -> Counter[str]:
    """Delete what the namespace keeps of every team that asked through `enterprise`'s org-wide
    install, and of the org; returns the counts, as `forget_team`."""
    teams = sorted(client.smembers(keys.org_teams(enterprise)))
    removed = forget_team(client, keys, enterprise, *teams)
    removed["keys"] += client.delete(keys.org_teams(enterprise))
    removed["teams"] = len(teams)
    return removed


def _passages_of(client: redis.Redis, stream: str, names: re.Pattern[str]) -> int:
    """Delete the passages that the team's queued jobs refer to."""
    refs = []
    for _entry_id, fields in client.xrange(stream):
        job = fields.get("job", "")
        if names.search(job):
            ref = Job.from_json(job).passage_ref
            if ref:
                refs.append(ref)
    return int(client.delete(*refs)) if refs else 0
