"""The reply flow end to end (signed requests -> bot -> real Redis -> `answer_jobs` as the
worker -> delivery -> Slack fake), under the failures measured in issue 10: a slow
placeholder, a Redis stall, a retried event. Each question ends in exactly one final message.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from explain_core.queue import JobQueue
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_USER_ID, SlackFake
from tests.support.work import answer_jobs

__all__ = ["module_redis", "slack"]

PASSAGE = "The Normans gave their name to Normandy, a region in France."


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, slack_retry_s=20.0,
                                                  sweep_interval_s=0.1, lost_grace_s=0.5))
    under_test.services.flow.replier.first_backoff_s = 0.1
    yield under_test
    under_test.close()


def bot_messages(fake: SlackFake, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages_in(channel) if m.get("user") == BOT_USER_ID]


def finals(fake: SlackFake, channel: str) -> list[str]:
    return [c.args["text"] for c in fake.calls("chat.update", channel=channel) if c.status == 200]


def test_a_slow_placeholder_and_a_fast_answer_make_one_message(bot: BotUnderTest) -> None:
    """Measured before: a slow placeholder post then a fast worker left an orphan picture or
    told "failed" and answered (3/3). The job is queued only once the placeholder exists."""
    channel = unique("C")
    bot.start_delivery()
    bot.fake.delay_next("chat.postMessage", 2.0, channel=channel)
    bot.command(f"Who gave their name to Normandy? | {PASSAGE}", channel=channel)
    time.sleep(0.5)
    assert bot.jobs() == []  # nothing to answer before the placeholder exists
    wait_until(bot.jobs, what="the job")
    answer_jobs(bot.queue)
    [update] = bot.fake.wait_for(lambda: finals(bot.fake, channel), what="the answer")
    [placeholder] = bot_messages(bot.fake, channel)
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), what="the picture")
    assert update.startswith("Answer:") and upload.thread_ts == placeholder["ts"]
    assert len(bot.fake.calls("chat.postMessage", channel=channel)) == 1


def test_a_placeholder_post_that_times_out_but_was_posted_is_not_posted_again(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.services.flow.replier.client.timeout = 1
    bot.start_delivery()
    bot.fake.delay_next("chat.postMessage", 1.5, channel=channel)  # Slack posts it; its answer comes too late
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    [job] = wait_until(bot.jobs, timeout=20, what="the job")
    [placeholder] = bot_messages(bot.fake, channel)
    assert job.reply_to.ts == placeholder["ts"]  # found by its metadata, not posted twice
    answer_jobs(bot.queue)
    [update] = bot.fake.wait_for(lambda: finals(bot.fake, channel), what="the answer")
    assert update.startswith("Answer:") and len(bot_messages(bot.fake, channel)) == 1


def test_a_retry_past_the_guard_posts_nothing(bot: BotUnderTest) -> None:
    """Two deliveries of one Slack event both got past the first-delivery guard (Redis failed
    open there): one job, one placeholder, one answer; the second delivery finds the first's
    placeholder recorded and posts nothing (it posted "You asked this already" in a second
    placeholder before soak seed 3)."""
    channel = unique("C")
    bot.start_delivery()
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    event = bot.mention(channel, "Who gave their name to Normandy?", thread_ts=root["ts"])
    wait_until(bot.jobs, what="the job")
    bot.queue.redis.delete(bot.queue.keys.once(f"event:T0TEST:{channel}:{event['ts']}"))  # the guard forgot it
    assert bot.event(event, retry_num=1).status == 200
    time.sleep(1.0)
    assert len(bot.jobs()) == 1
    answer_jobs(bot.queue)
    [answer] = bot.fake.wait_for(lambda: finals(bot.fake, channel), what="the answer")
    assert answer.startswith("Answer:")
    assert len(bot_messages(bot.fake, channel)) == 1
    assert bot.fake.calls("chat.postEphemeral", channel=channel) == []


def test_a_redis_stall_never_says_failed_before_an_answer(slack: SlackFake, namespace: str) -> None:
    """Measured before: a 40 s Redis stall told 3 of 10 askers "failed" and then answered them.

    Redis is frozen (SIGSTOP) just as the bot queues five questions, for longer than the bot's
    Redis timeout and retries: every enqueue call fails, and Redis runs those already sent once
    it resumes. The placeholders wait; the sweeper asks Redis: a job it knows is answered once,
    one it does not is told "couldn't take it" once.
    """
    server = RedisServer(appendonly=False).start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1.5,
                                  retry=Retry(NoBackoff(), 1))
    bot = BotUnderTest(slack, settings_for(slack, server.url, namespace, sweep_interval_s=0.2, lost_grace_s=1.0),
                       queue=JobQueue(client, namespace))
    real_enqueue = bot.queue.enqueue
    askers = 5

    def freeze() -> None:
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        threading.Timer(4.0, os.kill, (server.proc.pid, signal.SIGCONT)).start()

    all_at_enqueue = threading.Barrier(askers, action=freeze)  # each question admitted, posted, recorded

    def enqueue_into_a_stall(*args: Any, **kwargs: Any) -> Any:
        all_at_enqueue.wait(timeout=20)
        return real_enqueue(*args, **kwargs)

    try:
        bot.start_delivery()
        bot.start_sweeper()
        warm = unique("C")  # one question before: Redis has the enqueue script loaded, as in service
        bot.command(f"Who? | {PASSAGE}", channel=warm, user="UWARM")
        wait_until(bot.jobs, what="the first job")
        answer_jobs(bot.queue, consumer="stall-worker")
        slack.wait_for(lambda: finals(slack, warm), what="the first answer")
        bot.queue.enqueue = enqueue_into_a_stall  # type: ignore[method-assign]
        asked = []
        for i in range(askers):
            channel = unique("C")
            asked.append((channel, bot.command(f"Who? | {PASSAGE}", channel=channel, user=f"U{i}")))
        # Up to 90 s for the sweeper's retries on a machine busy with the rest of the suite (a
        # fresh clone's `make test` once needed more than 30); the loop ends as soon as all settle.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the worker, answering whatever reaches the stream
            try:
                answer_jobs(bot.queue, consumer="stall-worker")
            except redis.RedisError:
                pass
            settled = [finals(slack, c) or slack.responses(r.response_id or "") for c, r in asked]
            if all(settled) and not bot.services.flow.tracker.local():
                break
            time.sleep(0.2)
        answered = 0
        for channel, reply in asked:
            texts = finals(slack, channel)
            assert len(texts) == 1, f"not exactly one final message in {channel}: {texts}"
            assert not slack.responses(reply.response_id or "")  # nothing said besides
            queued = bot.queue.known(f"command:T0TEST:{reply.trigger_id}")
            # "Answer" exactly when Redis ran the enqueue; "couldn't take it" exactly when it did not
            # (a command that timed out on a new connection never left the client).
            assert texts[0].startswith("Answer:" if queued else "I couldn't take your question"), (queued, texts)
            answered += queued
        assert answered >= 1  # the enqueue on the connection open before the stall: run, "failed", answered
    finally:
        bot.close()
        server.close()
