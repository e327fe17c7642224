"""The bot's metrics on a real Redis: each outcome counted once whichever process claims it, and
the deployment's gauges read at scrape time (a gap, not zeros, while Redis is away)."""
from __future__ import annotations

from typing import Any

import pytest
import redis
from prometheus_client import generate_latest
from slack_sdk.errors import SlackApiError

from bot.intake.files import FileReader
from bot.metrics import BotMetrics, QueueCollector, entry_point
from bot.outcome.tracking import Outcome, Outcomes, counted_as
from bot.slack_client import web_client
from explain_core.queue import JobOptions, JobQueue, ReplyTo
from tests.support.bot_harness import settings_for, slack
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import SlackFake

__all__ = ["slack"]


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
    assert [counted_as(o) for o in Outcome] == ["answered", "told_why", "refused", "lost", "lost", "deadline_passed",
                                                "lost"]
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


def test_every_attempt_of_every_slack_call_is_counted_once_with_its_retries(slack: SlackFake) -> None:
    """Counted where slack_sdk makes each HTTP request, so retries by slack_sdk's handlers (the
    listeners' client) and by the reply flow alike show as attempts; and a file download too."""
    metrics = BotMetrics()
    settings = settings_for(slack, "redis://unused", "unused")
    client = web_client(settings, metrics)  # the listeners' client: slack_sdk retries 429 and 5xx
    slack.fail_next("conversations.replies", 503)
    slack.fail_next("conversations.replies", 429, retry_after=1)
    root = slack.add_message("C1", {"user": "U1", "text": "Ada lived in London."})
    client.conversations_replies(channel="C1", ts=root["ts"])
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="CNOTIN1", text="hi")  # Slack says not_in_channel: no retry

    def count(method: str, result: str) -> float | None:
        return metrics.registry.get_sample_value("qa_bot_slack_calls_total", {"method": method, "result": result})

    assert [count("conversations.replies", r) for r in ("http_503", "rate_limited", "ok")] == [1, 1, 1]
    assert metrics.registry.get_sample_value("qa_bot_slack_retries_total", {"method": "conversations.replies"}) == 2
    assert count("chat.postMessage", "not_in_channel") == 1
    assert len(slack.calls()) == 4  # what Slack saw, attempt by attempt: the same four

    file = slack.add_file("notes.txt", b"Ada lived in London.")
    assert FileReader(client, settings).read_file(file) == "Ada lived in London."
    assert count("files.download", "ok") == 1


class _LosesFirstReply(redis.Connection):
    """A connection whose first SET runs in Redis but whose reply never arrives."""

    lost = False
    last = ""

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.last = str(args[0]) if args else ""
        super().send_command(*args, **kwargs)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().read_response(*args, **kwargs)
        if self.last == "SET" and not _LosesFirstReply.lost:
            _LosesFirstReply.lost = True
            raise redis.ConnectionError("the reply was lost on the way")
        return response


def test_a_claim_whose_reply_was_lost_is_still_counted_once(redis_url: str) -> None:
    """The claim ran in Redis but its reply was lost: the claim reads it back, finds its own token and
    counts it (a repeat used to take it for another claim's, and the outcome went uncounted)."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=_LosesFirstReply, decode_responses=True)
    client = redis.Redis(connection_pool=pool)
    metrics = BotMetrics()
    keys = JobQueue(client, "lost-reply").keys
    assert Outcomes(client, keys, metrics).claim("k1", Outcome.ANSWER) is Outcome.ANSWER
    assert _LosesFirstReply.lost  # the fault happened
    assert metrics.registry.get_sample_value("qa_bot_outcomes_total", {"outcome": "answered", "reason": ""}) == 1
    assert Outcomes(client, keys, BotMetrics()).claim("k1", Outcome.TIMEOUT) is Outcome.ANSWER  # and it is the claim
