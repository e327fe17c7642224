"""Feedback votes in real Redis: one per person per answer, counts equal to the votes kept,
old votes dropped with their counts, and an export that reads every vote exactly once."""
from __future__ import annotations

import io
import json
import time

import pytest

from explain_core.queue import JobQueue, Keys
from explain_core.queue.feedback import HELPFUL, NOT_HELPFUL, Vote, Votes, export


@pytest.fixture()
def votes(redis_url: str, namespace: str) -> Votes:
    queue = JobQueue.connect(redis_url, namespace=namespace)
    return Votes(queue.redis, queue.keys)


def vote(tag: str, voter: str, value: str, *, at: float | None = None, model: str = "m") -> Vote:
    return Vote(tag=tag, key=f"event:T:C:{tag}", voter=voter, team="T", channel="C", vote=value, model=model,
                method="vanilla", score=0.75, no_answer=False, at=time.time() if at is None else at)


def test_a_second_click_replaces_the_vote_and_the_counts_follow(votes: Votes) -> None:
    assert votes.record(vote("a1", "U1", HELPFUL)) is None
    previous = votes.record(vote("a1", "U1", NOT_HELPFUL))
    assert previous is not None and previous.vote == HELPFUL
    votes.record(vote("a1", "U2", HELPFUL))
    votes.record(vote("a2", "U1", HELPFUL, model="other"))
    assert votes.counts() == {("m", NOT_HELPFUL): 1, ("m", HELPFUL): 1, ("other", HELPFUL): 1}
    kept = sorted((v.tag, v.voter, v.vote) for v in votes.all())
    assert kept == [("a1", "U1", NOT_HELPFUL), ("a1", "U2", HELPFUL), ("a2", "U1", HELPFUL)]


def test_votes_past_their_retention_go_with_their_counts(votes: Votes) -> None:
    old = time.time() - Keys.FEEDBACK_RETENTION_S - 60
    votes.record(vote("old", "U1", NOT_HELPFUL, at=old))
    assert votes.counts() == {("m", NOT_HELPFUL): 1}
    votes.record(vote("new", "U1", HELPFUL))  # each vote drops the expired ones
    assert votes.counts() == {("m", HELPFUL): 1}
    assert [v.tag for v in votes.all()] == ["new"]


def test_export_reads_every_vote_once_across_pages_and_shared_timestamps(votes: Votes) -> None:
    at = time.time()
    for i in range(1203):  # pages of 500; 700 votes share one timestamp across two page bounds
        votes.record(vote(f"t{i}", "U1", HELPFUL, at=at if i >= 400 and i < 1100 else at + i))
    out = io.StringIO()
    assert export(votes, out) == 1203
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(line["tag"] for line in lines) == sorted(f"t{i}" for i in range(1203))
    assert {"key", "model", "method", "score", "voter", "vote", "at"} <= set(lines[0])


def test_an_unknown_vote_is_refused(votes: Votes) -> None:
    with pytest.raises(ValueError):
        votes.record(vote("a1", "U1", "maybe"))
