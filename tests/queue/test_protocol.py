"""The Redis Streams protocol on a real Redis, driven from both ends without a worker process."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import redis

from explain_core.errors import Busy, Limited, SchemaError
from explain_core.present.summary import AnswerSummary
from explain_core.queue import (
    PASSAGE_INLINE_BYTES,
    SCHEMA_VERSION,
    WORKER_GROUP,
    DeadLetter,
    Finished,
    Job,
    JobError,
    JobOptions,
    JobQueue,
    JobResult,
    Keys,
    ReplyTo,
    ResultImage,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
REPLY_TO = ReplyTo(channel="C1", thread_ts="1700000000.000100", user="U1")
PARIS = AnswerSummary(answer="Paris", confidence=0.9, no_answer=False, sentence="In Paris.", answer_start=3,
                      answer_end=8, top_words=[], model="tiny", model_label="tiny", method="vanilla",
                      method_label="vanilla gradient", latency_ms=None, windows=1)


def result_for(job_id: str, key: str) -> JobResult:
    return JobResult(key=key, reply_to=REPLY_TO, ok=True, answers=[PARIS],
                     images=[ResultImage(PNG, "Saliency of each word", "tiny")], timings_ms={"compute_ms": 3.0},
                     job_id=job_id)


@pytest.fixture()
def queue(redis_url: str, namespace: str) -> JobQueue:
    return JobQueue.connect(redis_url, namespace)


def test_messages_round_trip_through_json() -> None:
    job = Job(key="k", question="Where?", options=JobOptions("smoothgrad", "m", True), reply_to=REPLY_TO,
              enqueued_at=1.5, passage="In Paris. \ud800 é")
    assert Job.from_json(job.to_json()) == job
    result = result_for("1-0", "k")
    text = result.to_json()
    assert JobResult.from_json(text) == result
    assert json.loads(text)["v"] == SCHEMA_VERSION
    failed = JobResult.failure("1-0", "k", REPLY_TO, "empty_passage", "the passage has no text")
    assert JobResult.from_json(failed.to_json()).error == JobError("empty_passage", "the passage has no text")
    dead = DeadLetter("1-0", "{not json", JobError("bad_job", "unreadable"), 3, 2.0)
    assert DeadLetter.from_json(dead.to_json()) == dead


@pytest.mark.parametrize("text", [
    "not json", "[1]", json.dumps({"v": SCHEMA_VERSION + 1, "key": "k"}),
    json.dumps({"v": SCHEMA_VERSION, "key": "k", "question": "q", "reply_to": {}}),  # no passage at all
    json.dumps({"v": SCHEMA_VERSION, "question": "q", "passage": "p"}),  # no key
])
def test_unreadable_jobs_raise_schema_error(text: str) -> None:
    with pytest.raises(SchemaError):
        Job.from_json(text)


def test_readers_ignore_fields_added_later() -> None:
    data = json.loads(result_for("1-0", "k").to_json())
    data["added_in_a_later_release"] = True
    assert JobResult.from_json(json.dumps(data)) == result_for("1-0", "k")


def test_duplicate_enqueue_gives_one_job(queue: JobQueue) -> None:
    first = queue.enqueue("slack:T1:C1:123.456", "Where?", "In Paris.", JobOptions(), REPLY_TO)
    second = queue.enqueue("slack:T1:C1:123.456", "Where?", "In Paris.", JobOptions(), REPLY_TO)
    assert not first.duplicate and first.job_id and first.ahead == 0
    assert second == type(second)(job_id=None, ahead=0, duplicate=True)
    assert queue.depth() == 1
    assert 3500 < queue.redis.ttl(f"{queue.namespace}:dedup:slack:T1:C1:123.456") <= 3600


def test_ahead_counts_jobs_not_finished(queue: JobQueue) -> None:
    aheads = [queue.enqueue(f"k{i}", "q", "p", JobOptions(), ReplyTo()).ahead for i in range(3)]
    assert aheads == [0, 1, 2]
    taken = queue.read_jobs("w1", count=2, block_ms=10)  # in progress: still ahead of a newcomer
    assert queue.enqueue("k3", "q", "p", JobOptions(), ReplyTo()).ahead == 3
    queue.finish([Finished(taken[0].entry_id, result_for(taken[0].entry_id, "k0"))])
    assert queue.enqueue("k4", "q", "p", JobOptions(), ReplyTo()).ahead == 3
    stats = queue.stats()
    assert (stats.waiting, stats.in_progress, stats.results_waiting) == (3, 1, 1)


def test_a_jobs_place_in_line_follows_the_queue_and_fair_share(queue: JobQueue) -> None:
    """`ahead` is what a waiting question's placeholder shows: jobs before it in the stream,
    those being computed included; a question held behind its asker's earlier one has no place
    until it joins the stream."""
    first, other = replace(REPLY_TO, team="T1", user="UA"), replace(REPLY_TO, team="T1", user="UB")
    for key, asker in (("a0", first), ("a1", first), ("b0", other)):
        queue.enqueue(key, "q", "p", JobOptions(), asker)
    assert queue.ahead(["a0", "a1", "b0", "unknown"]) == [0, None, 1, None]
    taken = queue.read_jobs("w1", count=1, block_ms=10)
    assert queue.ahead(["a0", "b0"]) == [0, 1]  # a0 is being computed: still ahead of b0
    queue.finish([Finished(taken[0].entry_id, result_for(taken[0].entry_id, "a0"))])
    assert queue.ahead(["a0", "a1", "b0"]) == [None, 1, 0]  # a1 joined the line behind b0
    assert queue.redis.ttl(queue.keys.order) > 0


def test_jobs_enqueued_before_any_worker_are_delivered_intact(queue: JobQueue) -> None:
    question, passage = "Où est-il? \ud83d", "Il est à Paris 😀 \udc00."  # lone surrogates, as JSON allows
    queue.enqueue("early", question, passage, JobOptions(method="grad_x_input"), REPLY_TO)
    (entry,) = queue.read_jobs("w1", count=10, block_ms=10)
    job = Job.from_json(entry.payload)
    assert (job.key, job.question, job.passage, job.options.method, job.reply_to, entry.deliveries) == (
        "early", question, passage, "grad_x_input", REPLY_TO, 1)


def test_large_passage_is_stored_once_and_referenced(queue: JobQueue) -> None:
    passage = "Paris is the capital of France. " * 1000
    assert len(passage) > PASSAGE_INLINE_BYTES
    queue.enqueue("a", "What is the capital?", passage, JobOptions(), ReplyTo())
    queue.enqueue("b", "Which country?", passage, JobOptions(), ReplyTo())
    entries = queue.read_jobs("w1", count=10, block_ms=10)
    jobs = [Job.from_json(e.payload) for e in entries]
    assert all(len(e.payload) < 1000 for e in entries)
    assert jobs[0].passage is None and jobs[0].passage_ref == jobs[1].passage_ref
    assert queue.passages(jobs) == [passage, passage]
    assert len(list(queue.redis.scan_iter(f"{queue.namespace}:passage:*"))) == 1
    queue.redis.delete(jobs[0].passage_ref)  # its TTL ran out while the job waited
    assert queue.passages(jobs) == [None, None]


def test_a_follow_up_about_a_stored_passage_does_not_send_it_again(queue: JobQueue) -> None:
    """The bot's bytes to Redis, as Redis counts them: the first question about a large
    document carries it, a follow-up only refers to it (and keeps it another TTL); once the
    stored copy is gone, the next question sends the text again."""
    passage = "Paris is the capital of France. " * 3000

    def sent(key: str) -> int:
        before = queue.redis.info("stats")["total_net_input_bytes"]
        queue.enqueue(key, "What is the capital?", passage, JobOptions(), ReplyTo())
        return int(queue.redis.info("stats")["total_net_input_bytes"] - before)

    assert sent("first") > len(passage)
    (ref,) = queue.redis.scan_iter(f"{queue.namespace}:passage:*")
    queue.redis.expire(ref, 60)
    assert sent("follow-up") < 4000
    assert queue.redis.ttl(ref) > 3600  # the follow-up kept the document for its own TTL
    queue.redis.delete(ref)
    assert sent("after it expired") > len(passage)
    jobs = [Job.from_json(e.payload) for e in queue.read_jobs("w1", count=10, block_ms=10)]
    assert [j.key for j in jobs] == ["first", "follow-up", "after it expired"]
    assert queue.passages(jobs) == [passage] * 3


def test_finish_writes_one_result_however_often_it_runs(queue: JobQueue) -> None:
    queue.enqueue("k", "q", "p", JobOptions(), REPLY_TO)
    (entry,) = queue.read_jobs("w1", count=1, block_ms=10)
    done = Finished(entry.entry_id, result_for(entry.entry_id, "k"))
    assert queue.finish([done]) == [True]
    assert queue.finish([done]) == [False]  # a second worker that computed it too, or a retried write
    results = queue.read_results("bot", "b1", count=10, block_ms=10)
    assert [r.result for r in results] == [done.result]
    assert queue.depth() == 0 and queue.redis.xpending(queue.keys.jobs, WORKER_GROUP)["pending"] == 0


def test_results_of_a_dead_bot_consumer_are_reclaimed(redis_url: str, namespace: str) -> None:
    queue = JobQueue.connect(redis_url, namespace, result_reclaim_s=0.2)
    queue.enqueue("k", "q", "p", JobOptions(), REPLY_TO)
    (entry,) = queue.read_jobs("w1", count=1, block_ms=10)
    queue.finish([Finished(entry.entry_id, result_for(entry.entry_id, "k"))])
    (got,) = queue.read_results("bot", "dies-before-posting", count=10, block_ms=10)
    assert queue.read_results("bot", "b2", count=10, block_ms=10) == []  # not idle long enough yet
    time.sleep(0.3)
    (again,) = queue.read_results("bot", "b2", count=10, block_ms=10)
    assert again == got
    queue.ack_result("bot", again.entry_id)
    time.sleep(0.3)
    assert queue.read_results("bot", "b3", count=10, block_ms=10) == []
    assert queue.redis.xlen(queue.keys.results) == 0


def test_unreadable_result_is_dropped_not_redelivered(queue: JobQueue) -> None:
    queue.redis.xadd(queue.keys.results, {"result": "{broken"})
    assert queue.read_results("bot", "b1", count=10, block_ms=10) == []
    assert queue.redis.xpending(queue.keys.results, "bot")["pending"] == 0


def test_claim_once(queue: JobQueue) -> None:
    assert queue.claim_once("posted:1-0", ttl_s=60) is True
    assert queue.claim_once("posted:1-0", ttl_s=60) is False
    assert queue.claim_once("posted:2-0", ttl_s=60) is True


def test_full_backlog_is_refused_without_burning_the_key(redis_url: str, namespace: str) -> None:
    queue = JobQueue.connect(redis_url, namespace, max_backlog=2)
    for key in ("a", "b"):
        queue.enqueue(key, "q", "p", JobOptions(), ReplyTo())
    with pytest.raises(Busy) as refused:
        queue.enqueue("c", "q", "p", JobOptions(), ReplyTo())
    assert refused.value.code == "queue_full" and "2 questions waiting" in refused.value.message
    taken = queue.read_jobs("w1", count=1, block_ms=10)
    queue.finish([Finished(taken[0].entry_id, result_for(taken[0].entry_id, "a"))])
    assert not queue.enqueue("c", "q", "p", JobOptions(), ReplyTo()).duplicate  # the user's retry gets in


def test_retries_and_reclaims_count_deliveries(queue: JobQueue) -> None:
    queue.enqueue("k", "q", "p", JobOptions(), ReplyTo())
    (first,) = queue.read_jobs("w1", count=1, block_ms=10)
    second = queue.retry_job("w1", first)
    assert second is not None and second.deliveries == 2 and second.payload == first.payload
    assert queue.reclaim_jobs("w2", min_idle_ms=60_000, count=10) == []  # w1 is alive (recent delivery)
    time.sleep(0.05)
    (third,) = queue.reclaim_jobs("w2", min_idle_ms=10, count=10)
    assert third.entry_id == first.entry_id and third.deliveries == 3
    queue.finish([Finished(third.entry_id, result_for(third.entry_id, "k"))])
    assert queue.retry_job("w2", third) is None  # finished: nothing left to retry


def test_lost_consumer_group_is_recreated(queue: JobQueue) -> None:
    queue.enqueue("a", "q", "p", JobOptions(), ReplyTo())
    queue.read_jobs("w1", count=10, block_ms=10)
    queue.redis.delete(queue.keys.jobs)  # what a restart without persistence looks like
    queue.enqueue("b", "q", "p", JobOptions(), ReplyTo())
    (entry,) = queue.read_jobs("w1", count=10, block_ms=10)
    assert Job.from_json(entry.payload).key == "b"


def test_leave_keeps_a_consumer_that_holds_jobs(queue: JobQueue) -> None:
    queue.enqueue("a", "q", "p", JobOptions(), ReplyTo())
    queue.read_jobs("busy", count=1, block_ms=10)
    queue.read_jobs("idle", count=1, block_ms=10)
    queue.leave("busy")
    queue.leave("idle")
    assert [c["name"] for c in queue.redis.xinfo_consumers(queue.keys.jobs, WORKER_GROUP)] == ["busy"]


def test_every_key_written_has_a_ttl(queue: JobQueue) -> None:
    queue.enqueue("a", "q", "x" * (PASSAGE_INLINE_BYTES + 1), JobOptions(), REPLY_TO)
    queue.enqueue("b", "q", "p", JobOptions(), replace(REPLY_TO, user="U2"))
    queue.enqueue("c", "q", "p", JobOptions(), replace(REPLY_TO, user="U2"))  # held behind b
    a, b = queue.read_jobs("w1", count=2, block_ms=10)
    queue.finish([Finished(a.entry_id, result_for(a.entry_id, "a"))])  # frees U1's place and C1's load
    queue.read_results("bot", "b1", count=10, block_ms=10)
    queue.claim_once("posted:a")
    keys = sorted(queue.redis.scan_iter(f"{queue.namespace}:*"))
    kinds = {key.split(":")[1] for key in keys}
    assert kinds == {"jobs", "order", "results", "dedup", "passage", "done", "once", "active", "held", "load"}
    assert {key: queue.redis.ttl(key) for key in keys if queue.redis.ttl(key) <= 0} == {}
    queue.finish([Finished(b.entry_id, None, DeadLetter(b.entry_id, b.payload, JobError("x", "y"), 3, 0.0))])
    (c,) = queue.read_jobs("w1", count=2, block_ms=10)  # released into the stream by b's end
    queue.finish([Finished(c.entry_id, result_for(c.entry_id, "c"))])
    keys = sorted(queue.redis.scan_iter(f"{queue.namespace}:*"))
    assert {key.split(":")[1] for key in keys} == {"jobs", "results", "dead", "dedup", "passage", "done", "once"}
    assert {key: queue.redis.ttl(key) for key in keys if queue.redis.ttl(key) <= 0} == {}


def test_enqueue_reports_redis_being_away(namespace: str) -> None:
    queue = JobQueue.connect("redis://127.0.0.1:1/0", namespace)
    with pytest.raises(redis.ConnectionError):
        queue.enqueue("k", "q", "p", JobOptions(), ReplyTo())


def serve_one(queue: JobQueue) -> str:
    """What a worker taking one job at a time answers next (its key), finishing it."""
    (entry,) = queue.read_jobs("w1", count=1, block_ms=10)
    key = Job.from_json(entry.payload).key
    queue.finish([Finished(entry.entry_id, result_for(entry.entry_id, key))])
    return key


def test_a_flood_from_one_asker_never_sits_in_front_of_another_askers_first_question(
        redis_url: str, namespace: str) -> None:
    queue = JobQueue.connect(redis_url, namespace, max_per_user=3, max_per_channel=1000)
    flooder, other = replace(REPLY_TO, team="T1", user="UA"), replace(REPLY_TO, team="T1", user="UB")
    accepted, refused = [], 0
    for i in range(1000):  # the reported flood: 1,000 /explain from one person in seconds
        try:
            accepted.append(queue.enqueue(f"a{i}", "q", "p", JobOptions(), flooder))
        except Limited as exc:
            assert exc.code == "user_limit" and "3 questions waiting" in exc.message
            refused += 1
    assert (len(accepted), refused) == (3, 997)
    assert [a.job_id is not None for a in accepted] == [True, False, False]  # one in the stream, two held
    with pytest.raises(Limited):
        queue.admit("UA", "C1", team="T1")  # the bot's cheap check says the same before posting anything
    queue.admit("UB", "C1", team="T1")
    first_of_other = queue.enqueue("b0", "q", "p", JobOptions(), other)
    assert first_of_other.ahead == 1 and queue.depth() == 2  # only the flooder's running question is ahead
    queue.enqueue("b1", "q", "p", JobOptions(), other)
    assert [serve_one(queue) for _ in range(5)] == ["a0", "b0", "a1", "b1", "a2"]  # round robin
    assert queue.depth() == 0
    assert queue.enqueue("a1000", "q", "p", JobOptions(), flooder).job_id  # all answered: their place is free


def test_channel_limit_counts_unanswered_questions_of_everyone_in_it(redis_url: str, namespace: str) -> None:
    queue = JobQueue.connect(redis_url, namespace, max_per_user=3, max_per_channel=4)
    for i in range(4):
        queue.enqueue(f"k{i}", "q", "p", JobOptions(), replace(REPLY_TO, user=f"U{i}"))
    with pytest.raises(Limited) as refused:
        queue.enqueue("k4", "q", "p", JobOptions(), replace(REPLY_TO, user="U4"))
    assert refused.value.code == "channel_limit" and "this channel has 4 questions" in refused.value.message
    queue.enqueue("elsewhere", "q", "p", JobOptions(), replace(REPLY_TO, channel="C2", user="U4"))
    serve_one(queue)
    assert not queue.enqueue("k4", "q", "p", JobOptions(), replace(REPLY_TO, user="U4")).duplicate


def test_team_limit_caps_what_one_workspace_holds_in_front_of_another(redis_url: str, namespace: str) -> None:
    """With many workspaces, one team's burst of many askers holds at most QA_MAX_PER_TEAM
    questions in front of another team's first (issue 21)."""
    queue = JobQueue.connect(redis_url, namespace, max_per_team=3, max_per_channel=10_000)
    burst = replace(REPLY_TO, team="TBURST")
    for i in range(3):
        queue.enqueue(f"t{i}", "q", "p", JobOptions(), replace(burst, user=f"U{i}", channel=f"C{i}"))
    with pytest.raises(Limited) as refused:
        queue.admit("U9", "C9", "TBURST")
    assert refused.value.code == "team_limit" and "this workspace has 3 questions" in refused.value.message
    with pytest.raises(Limited):  # enforced atomically too, past a stale admit
        queue.enqueue("t3", "q", "p", JobOptions(), replace(burst, user="U9", channel="C9"))
    other = queue.enqueue("first", "q", "p", JobOptions(), replace(REPLY_TO, team="TOTHER", user="U1"))
    assert other.ahead == 3
    serve_one(queue)
    assert not queue.enqueue("t3", "q", "p", JobOptions(), replace(burst, user="U9", channel="C9")).duplicate


def test_a_burst_from_many_askers_of_one_team_never_sits_in_front_of_another_teams_first_question(
        redis_url: str, namespace: str) -> None:
    """The per-asker round robin one level up (issue 21): with two slots per team, twenty askers of
    one workspace hold two jobs in the stream; another workspace's first question goes in third, and
    the workspaces then take turns."""
    queue = JobQueue.connect(redis_url, namespace, max_per_channel=1000, team_slots=2)
    for i in range(20):
        queue.enqueue(f"a{i}", "q", "p", JobOptions(), replace(REPLY_TO, team="TA", user=f"U{i}"))
    queue.enqueue("a0-again", "q", "p", JobOptions(), replace(REPLY_TO, team="TA", user="U0"))  # behind U0's first
    assert queue.depth() == 2
    # Each question at the gate has its place: the stream's two, then its team's turns before it.
    waiting = [f"a{i}" for i in range(2, 20)]
    assert queue.ahead(waiting, ["TA"] * len(waiting)) == list(range(2, 20))
    assert queue.ahead(["a2", "a0-again", "unknown"], ["TA", "TA", "TA"]) == [2, None, None]
    assert queue.ahead(["a2"]) == [None]  # without its team, a gated job's place is unknown
    first = queue.enqueue("b0", "q", "p", JobOptions(), replace(REPLY_TO, team="TB", user="U0"))
    assert first.job_id is not None and first.ahead == 2
    assert queue.ahead(["a2", "b0"], ["TA", "TB"]) == [3, 2]
    queue.enqueue("b1", "q", "p", JobOptions(), replace(REPLY_TO, team="TB", user="U1"))
    queue.enqueue("b2", "q", "p", JobOptions(), replace(REPLY_TO, team="TB", user="U2"))
    served = [serve_one(queue) for _ in range(8)]
    assert served == ["a0", "a1", "b0", "b1", "a2", "a3", "b2", "a4"]
    served += [serve_one(queue) for _ in range(16)]
    assert served[8:] == [f"a{i}" for i in range(5, 20)] + ["a0-again"] and queue.depth() == 0
    assert queue.enqueue("a-later", "q", "p", JobOptions(), replace(REPLY_TO, team="TA", user="U0")).job_id


def test_one_workspace_has_no_team_gate(redis_url: str, namespace: str) -> None:
    queue = JobQueue.connect(redis_url, namespace, max_per_channel=1000)  # team_slots 0: SLACK_BOT_TOKEN's mode
    for i in range(20):
        queue.enqueue(f"a{i}", "q", "p", JobOptions(), replace(REPLY_TO, team="TA", user=f"U{i}"))
    assert queue.depth() == 20


@pytest.mark.parametrize("loss", ["stream and place", "only the stream entry"])
def test_held_question_goes_in_when_the_askers_running_one_was_lost(queue: JobQueue, loss: str) -> None:
    first = queue.enqueue("a", "q", "p", JobOptions(), REPLY_TO)
    queue.enqueue("b", "q", "p", JobOptions(), REPLY_TO)
    if loss == "stream and place":  # a restart without persistence, or a flush
        queue.redis.delete(queue.keys.jobs, queue.keys.active(f"-:{REPLY_TO.user}"))
    else:  # trimmed or evicted: the asker's place still names it
        queue.redis.xdel(queue.keys.jobs, first.job_id)
    queue.enqueue("c", "q", "p", JobOptions(), REPLY_TO)
    assert [serve_one(queue) for _ in range(2)] == ["b", "c"]


def test_finishing_at_the_backlog_cap_never_trims_an_unfinished_job(redis_url: str, namespace: str) -> None:
    """Releasing a held question may take the stream one past the cap: nothing is trimmed. (An
    approximate MAXLEN there dropped the oldest job, alone in a stream node of deleted ones.)"""
    queue = JobQueue.connect(redis_url, namespace, max_backlog=101, max_per_channel=10_000)
    for i in range(100):  # one stream node: the oldest job, then 99 that are answered
        queue.enqueue(f"old{i}", "q", "p", JobOptions(), replace(REPLY_TO, user=f"U{i}"))
    entries = queue.read_jobs("w1", count=100, block_ms=10)
    queue.finish([Finished(e.entry_id, result_for(e.entry_id, f"old{i}")) for i, e in enumerate(entries) if i])
    for i in range(99):
        queue.enqueue(f"new{i}", "q", "p", JobOptions(), replace(REPLY_TO, user=f"V{i}"))
    queue.enqueue("held", "q", "p", JobOptions(), replace(REPLY_TO, user="V1"))
    queue.enqueue("new99", "q", "p", JobOptions(), replace(REPLY_TO, user="V99"))  # the stream at its cap
    (v1,) = [e for e in queue.read_jobs("w1", count=200, block_ms=10) if Job.from_json(e.payload).key == "new1"]
    queue.finish([Finished(v1.entry_id, result_for(v1.entry_id, "new1"))])  # releases "held"
    keys = {Job.from_json(fields["job"]).key for _id, fields in queue.redis.xrange(queue.keys.jobs)}
    assert "old0" in keys and "held" in keys and len(keys) == 101



def test_known_tells_a_queued_job_from_one_redis_lost(queue: JobQueue) -> None:
    queue.enqueue("a", "q", "p", JobOptions(), REPLY_TO)
    assert queue.known("a") and not queue.known("never-queued")
    queue.redis.flushdb()
    assert not queue.known("a")


def test_dead_letters_are_kept_for_their_own_retention_not_renewed_by_new_ones(
        queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("old", "new"):
        queue.enqueue(key, "q", "p", JobOptions(), replace(REPLY_TO, user=key))
        (entry,) = queue.read_jobs("w1", count=1, block_ms=10)
        queue.finish([Finished(entry.entry_id, None, DeadLetter(entry.entry_id, "-", JobError("x", "y"), 3, 0.0))])
        monkeypatch.setattr(Keys, "DEAD_RETENTION_S", 0)  # from now on, anything older is out of retention
        time.sleep(0.01)
    assert [d.job_id for d in queue.dead_letters()] == [entry.entry_id]


def test_killed_workers_leave_the_group_once_their_jobs_are_reclaimed(queue: JobQueue) -> None:
    for user in ("U1", "U2"):
        queue.enqueue(user, "q", "p", JobOptions(), replace(REPLY_TO, user=user))
    queue.read_jobs("killed", count=1, block_ms=10)
    queue.read_jobs("alive", count=1, block_ms=10)
    time.sleep(0.05)
    assert len(queue.reclaim_jobs("alive", min_idle_ms=20, count=10)) == 2  # alive takes both
    assert [c["name"] for c in queue.redis.xinfo_consumers(queue.keys.jobs, WORKER_GROUP)] == ["alive"]


def test_a_worker_with_a_heartbeat_is_never_forgotten(queue: JobQueue) -> None:
    """It may read between the clean-up's look and its delete, which would drop what it read."""
    queue.enqueue("a", "q", "p", JobOptions(), REPLY_TO)
    (entry,) = queue.read_jobs("slow-but-alive", count=1, block_ms=10)
    queue.finish([Finished(entry.entry_id, result_for(entry.entry_id, "a"))])  # nothing pending now
    queue.heartbeat("slow-but-alive", ttl_s=60)
    time.sleep(0.05)
    queue.reclaim_jobs("other", min_idle_ms=10, count=10)
    assert "slow-but-alive" in [c["name"] for c in queue.redis.xinfo_consumers(queue.keys.jobs, WORKER_GROUP)]


def test_check_counts_idle_live_workers_by_their_heartbeat(queue: JobQueue) -> None:
    """Redis lists a consumer only once something was delivered to it: an idle worker that
    has read nothing yet is alive all the same, and a killed one stops counting."""
    queue.heartbeat("idle", ttl_s=60)
    queue.heartbeat("killed", ttl_s=0.05)
    queue.heartbeat("stopped", ttl_s=60)
    queue.leave("stopped")
    time.sleep(0.1)
    assert queue.stats().workers == 1
