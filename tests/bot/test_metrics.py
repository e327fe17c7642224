"""The bot's metrics on a real Redis: each outcome counted once whichever process claims it, and
the deployment's gauges read at scrape time (a gap, not zeros, while Redis is away)."""
from __future__ import annotations

from prometheus_client import generate_latest

from bot.metrics import BotMetrics, QueueCollector, entry_point
from bot.outcome.tracking import Outcome, Outcomes, counted_as
from explain_core.queue import JobOptions, JobQueue, ReplyTo
from tests.support.redis_server import RedisServer


def test_an_outcome_claimed_by_two_processes_is_counted_by_the_one_that_records_it(redis_url: str) -> None:
    queue = JobQueue.connect(redis_url, "metrics")
    first, second = BotMetrics(), BotMetrics()  # two bot processes
    assert Outcomes(queue.redis, queue.keys, first).claim("k1", Outcome.ANSWER, "no_answer") is Outcome.ANSWER
    assert Outcomes(queue.redis, queue.keys, second).claim("k1", Outcome.TIMEOUT) is Outcome.ANSWER  # lost the race
    assert Outcomes(queue.redis, queue.keys, second).claim("k2", Outcome.FAILED, "passage_expired") is Outcome.FAILED
    assert first.registry.get_sample_value("qa_bot_outcomes_total", {"outcome": "no_answer", "reason": ""}) == 1
    assert second.registry.get_sample_value("qa_bot_outcomes_total",
                                            {"outcome": "deadline_passed", "reason": ""}) is None
    assert second.registry.get_sample_value("qa_bot_outcomes_total",
                                            {"outcome": "told_why", "reason": "passage_expired"}) == 1
    Outcomes(queue.redis, queue.keys, second).claim("k3", Outcome.UNQUEUED)
    assert second.registry.get_sample_value("qa_bot_outcomes_total", {"outcome": "lost", "reason": "unqueued"}) == 1


def test_the_outcome_kinds_and_entry_points_are_the_person_s_view() -> None:
    assert [counted_as(o) for o in Outcome] == ["answered", "told_why", "refused", "lost", "lost", "deadline_passed"]
    assert counted_as(Outcome.ANSWER, "no_answer") == "no_answer"
    assert [entry_point(k) for k in ("command:T:1", "view:T:V1", "event:T:C:1.2", "another:t:m:u", "compare:t:u",
                                     "odd")] == ["slash_command", "form", "message", "another_way", "compare", "other"]


def test_queue_gauges_are_read_from_redis_at_each_scrape(durable_redis: RedisServer) -> None:
    queue = JobQueue.connect(durable_redis.url, "gauges")
    registry = BotMetrics().registry
    registry.register(QueueCollector(queue))
    asker = ReplyTo(team="T", channel="C", user="U")
    for key in ("k1", "k2", "k3"):  # one person: the first in the stream, two held behind it
        queue.enqueue(key, "q", "p", JobOptions(), asker)
    queue.redis.zadd(queue.keys.replies, {"k1": 1.0, "k2": 2.0})

    def value(name: str, labels: dict[str, str] | None = None) -> float | None:
        return registry.get_sample_value(name, labels or {})

    assert value("qa_redis_up") == 1
    assert value("qa_queue_jobs", {"state": "waiting"}) == 1 and value("qa_queue_jobs", {"state": "in_progress"}) == 0
    assert value("qa_bot_held_questions") == 2
    assert value("qa_bot_pending_placeholders") == 2
    assert value("qa_queue_live_workers") == 0
    assert 0 <= value("qa_queue_oldest_job_age_seconds") < 60  # type: ignore[operator]
    durable_redis.stop()
    page = generate_latest(registry).decode()
    assert "qa_redis_up 0.0" in page and "qa_queue_jobs" not in page and "qa_bot_held_questions" not in page
