"""The sweeper: every placeholder reaches a final state within the deadline, also when Redis
loses its data or cannot be reached, and a result that comes after "no answer" is dropped.

Real Redis (private servers for the tests that restart or stop it), the real bot through
the harness, `answer_jobs` as the worker. Deadlines and intervals are shortened to seconds.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from bot.intake.submit import INTAKE_GRACE_S
from bot.outcome.replies import tag
from bot.outcome.tracking import Local, Outcome, Placeholder
from bot.ui import blocks
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import TEAM_ID, SlackFake
from tests.support.work import answer_jobs

__all__ = ["module_redis", "slack"]

PASSAGE = "The Normans gave their name to Normandy, a region in France."
FAST = dict(sweep_interval_s=0.1, lost_grace_s=0.5, slack_retry_s=5.0)


def make_bot(slack: SlackFake, url: str, namespace: str, **settings: float) -> BotUnderTest:
    bot = BotUnderTest(slack, settings_for(slack, url, namespace, **{**FAST, **settings}))
    bot.services.flow.replier.first_backoff_s = 0.1
    return bot


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    under_test = make_bot(slack, module_redis.url, namespace, reply_deadline_s=1.5)
    yield under_test
    under_test.close()


def finals(fake: SlackFake, channel: str) -> list[str]:
    """The texts the placeholder in `channel` was edited into, in order."""
    return [c.args["text"] for c in fake.calls("chat.update", channel=channel) if c.status == 200]


def ask(bot: BotUnderTest, channel: str, user: str = "UASKER") -> str:
    bot.command(f"Who gave their name to Normandy? | {PASSAGE}", channel=channel, user=user)
    return wait_until(lambda: [j for j in bot.jobs() if j.reply_to.channel == channel], what="the job")[0].key


def test_an_overdue_question_is_told_and_its_late_answer_dropped(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.start_sweeper()
    ask(bot, channel)
    [told] = bot.fake.wait_for(lambda: finals(bot.fake, channel), timeout=10, what="the timeout message")
    assert told.startswith("No answer after 2 seconds: the service is very busy, or no worker is running.")
    answer_jobs(bot.queue)  # the worker comes back and answers
    wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, what="the late result acked")
    time.sleep(0.3)
    assert finals(bot.fake, channel) == [told]  # never an answer after the failure message
    assert bot.fake.uploads(channel) == []
    assert bot.queue.redis.zcard(bot.queue.keys.replies) == 0


def test_an_answer_in_time_leaves_nothing_for_the_sweeper(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.start_sweeper()
    ask(bot, channel)
    answer_jobs(bot.queue)
    bot.fake.wait_for(lambda: finals(bot.fake, channel), what="the answer")
    time.sleep(2.0)  # past the deadline
    assert [t.split(":")[0] for t in finals(bot.fake, channel)] == ["Answer"]


def test_a_question_whose_queueing_failed_is_settled_once_redis_says_it_is_not_there(
        bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queueing raised a Redis error and the job never reached Redis: "couldn't take it",
    said only once Redis confirms (after the grace period), never "failed" for a job that exists
    (that case, a stall, is in test_reply_flow)."""
    channel = unique("C")

    def reply_lost(*args: object, **kwargs: object) -> object:
        raise redis.TimeoutError("Timeout reading from socket")  # and the command never ran

    monkeypatch.setattr(bot.queue, "enqueue", reply_lost)
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    tracker = bot.services.flow.tracker
    key = wait_until(lambda: [p.key for p, state in tracker.local() if state is Local.UNCERTAIN],
                     what="the uncertain placeholder")[0]
    monkeypatch.undo()
    bot.start_sweeper()
    [told] = bot.fake.wait_for(lambda: finals(bot.fake, channel), timeout=10, what="the message")
    assert told.startswith("I couldn't take your question: my job queue did not answer.")
    assert bot.services.flow.outcomes.get_many([key]) == [Outcome.UNQUEUED]


def test_a_redis_restart_without_persistence_reaches_every_asker(slack: SlackFake, namespace: str) -> None:
    """Measured before: a Redis restart without persistence lost 15/20 questions silently."""
    server = RedisServer(appendonly=False).start()
    bot = make_bot(slack, server.url, namespace, reply_deadline_s=60.0)
    try:
        channels = [unique("C") for _ in range(5)]
        for i, channel in enumerate(channels):
            ask(bot, channel, user=f"U{i}")
        bot.start_delivery()
        bot.start_sweeper()
        server.restart()  # every job, result, record and claim is gone
        for channel in channels:
            [told] = slack.wait_for(lambda c=channel: finals(slack, c), timeout=15, what=f"the message in {channel}")
            assert told.startswith("I lost your question: my job queue was restarted, or switched to its replica, "
                                   "and forgot it.")
        # and the service goes on: a new question is answered
        channel = unique("C")
        ask(bot, channel, user="UNEW")
        answer_jobs(bot.queue)
        [answer] = slack.wait_for(lambda: finals(slack, channel), timeout=15, what="the new answer")
        assert answer.startswith("Answer:")
    finally:
        bot.close()
        server.close()


def test_redis_unreachable_at_the_deadline_the_asker_is_told_from_memory(slack: SlackFake, namespace: str) -> None:
    server = RedisServer(appendonly=True).start()
    bot = make_bot(slack, server.url, namespace, reply_deadline_s=1.0)
    try:
        channel = unique("C")
        key = ask(bot, channel)
        server.stop()
        bot.start_delivery()
        bot.start_sweeper()
        [told] = slack.wait_for(lambda: finals(slack, channel), timeout=15, what="the timeout message")
        assert "I can't reach my job queue" in told
        server.start()  # the same data (append-only): the job is still queued
        wait_until(lambda: bot.services.flow.outcomes.get_many([key]) == [Outcome.TIMEOUT], timeout=40,
                   what="the outcome written once Redis is back")
        answer_jobs(bot.queue)
        wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, timeout=20, what="the result dropped")
        assert finals(slack, channel) == [told]
    finally:
        bot.close()
        server.close()


def test_the_sweeper_carries_on_through_redis_errors(bot: BotUnderTest) -> None:
    channel = unique("C")
    ask(bot, channel)
    client = bot.queue.redis
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) // 2))  # writes answer OOM
    try:
        sweeper = bot.start_sweeper()
        time.sleep(2.5)  # past the deadline: the claim cannot be written, so nothing is said
        assert finals(bot.fake, channel) == []
        assert sweeper._thread is not None and sweeper._thread.is_alive()
    finally:
        client.config_set("maxmemory", "0")
    [told] = bot.fake.wait_for(lambda: finals(bot.fake, channel), timeout=40, what="the timeout message")
    assert told.startswith("No answer after")


def test_a_claim_whose_message_was_never_shown_is_shown(bot: BotUnderTest) -> None:
    """A bot that died between taking the outcome and editing the placeholder: the next sweep
    (any process) shows the message."""
    channel = unique("C")
    key = ask(bot, channel)
    bot.services.flow.outcomes.claim(key, Outcome.LOST)
    bot.services.flow.tracker.mark(key, Local.WAITING)
    bot.start_sweeper()
    [told] = bot.fake.wait_for(lambda: finals(bot.fake, channel), timeout=10, what="the message")
    assert told.startswith("I lost your question")
    wait_until(lambda: bot.queue.redis.zcard(bot.queue.keys.replies) == 0, what="the placeholder untracked")


# -- a bot process killed between Slack's acknowledgement and its placeholder's record (soak seed 1) --
def _died_taking(bot: BotUnderTest, channel: str, *, posted: bool) -> Placeholder:
    """What a process killed while taking a question leaves behind: its journal entry, and its
    placeholder if it got that far (posted, never recorded)."""
    now = time.time()
    pending = Placeholder(key=f"event:{TEAM_ID}:{channel}:{now:.6f}", team=TEAM_ID, channel=channel, ts="",
                          user="UASKER", question="Who gave their name to Normandy?", posted_at=now,
                          deadline=now + INTAKE_GRACE_S)
    bot.services.flow.tracker.expect(pending)
    if posted:
        bot.services.flow.replier.post(channel, None, blocks.placeholder(pending.question, None, 0),
                                       tag(pending.key), kind="placeholder")
    return pending


@pytest.mark.parametrize("posted", [False, True], ids=["before-the-placeholder", "after-the-placeholder"])
def test_a_question_whose_process_died_while_taking_it_is_told_lost_once(bot: BotUnderTest, posted: bool) -> None:
    channel = unique("C")
    pending = _died_taking(bot, channel, posted=posted)
    sweeper = bot.start_sweeper()
    assert sweeper.sweep(now=pending.deadline - 1) == 0  # within the grace a live process may still be at it
    assert sweeper.sweep(now=pending.deadline + 1) == 1
    lost = "I lost your question: I was restarted while taking it. Please ask it again."
    shown = bot.fake.wait_for(lambda: [m["text"] for m in bot.fake.messages_in(channel)
                                       if not blocks.is_pending(m["text"])], what="the lost message")
    assert shown == [lost]
    assert len(bot.fake.messages_in(channel)) == 1  # the placeholder became the message, or the message is new
    assert len(finals(bot.fake, channel)) == (1 if posted else 0)
    wait_until(lambda: bot.queue.redis.zcard(bot.queue.keys.intakes) == 0, what="the journal emptied")
    assert sweeper.sweep(now=pending.deadline + 10) == 0  # told once
    assert bot.services.flow.outcomes.get_many([pending.key]) == [Outcome.CRASHED]


def test_a_question_taken_normally_leaves_no_journal_entry(bot: BotUnderTest) -> None:
    channel = unique("C")
    ask(bot, channel)
    assert bot.queue.redis.zcard(bot.queue.keys.intakes) == 0
    assert bot.queue.redis.keys(f"{bot.queue.keys.namespace}:intake:*") == []
    assert bot.services.flow.tracker.abandoned(time.time() + INTAKE_GRACE_S + 1) == []


def test_an_intake_that_told_its_asker_while_redis_was_away_is_not_called_lost(
        slack: SlackFake, durable_redis: RedisServer, namespace: str) -> None:
    """The intake refused the question (Slack failing, say) while cut off from Redis, so it could
    not drop its journal entry: it drops it once Redis answers, before the grace ends (soak seed 1)."""
    bot = make_bot(slack, durable_redis.url, namespace)
    try:
        channel = unique("C")
        pending = _died_taking(bot, channel, posted=False)
        durable_redis.stop()
        bot.services.flow.tracker.expected(pending.key)  # fails, remembered
        durable_redis.start()
        assert bot.start_sweeper().sweep(now=pending.deadline + 1) == 0
        assert bot.queue.redis.zcard(bot.queue.keys.intakes) == 0
        time.sleep(0.3)
        assert bot.fake.messages_in(channel) == []
    finally:
        bot.close()
