"""The Redis Streams protocol on a real Redis, driven from both ends without a worker process."""
from __future__ import annotations

import json
import time

import pytest
import redis

from explain_core.errors import Busy, SchemaError
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
    return JobQueue.from_url(redis_url, namespace)


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
    queue = JobQueue.from_url(redis_url, namespace, result_reclaim_s=0.2)
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
    queue = JobQueue.from_url(redis_url, namespace, max_backlog=2)
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
    queue.enqueue("b", "q", "p", JobOptions(), REPLY_TO)
    a, b = queue.read_jobs("w1", count=2, block_ms=10)
    queue.finish([Finished(a.entry_id, result_for(a.entry_id, "a")),
                  Finished(b.entry_id, None, DeadLetter(b.entry_id, b.payload, JobError("x", "y"), 3, 0.0))])
    queue.read_results("bot", "b1", count=10, block_ms=10)
    queue.claim_once("posted:a")
    keys = sorted(queue.redis.scan_iter(f"{queue.namespace}:*"))
    kinds = {key.split(":")[1] for key in keys}
    assert kinds == {"jobs", "results", "dead", "dedup", "passage", "done", "once"}
    assert {key: queue.redis.ttl(key) for key in keys if queue.redis.ttl(key) <= 0} == {}


def test_enqueue_reports_redis_being_away(namespace: str) -> None:
    queue = JobQueue.from_url("redis://127.0.0.1:1/0", namespace)
    with pytest.raises(redis.ConnectionError):
        queue.enqueue("k", "q", "p", JobOptions(), ReplyTo())
