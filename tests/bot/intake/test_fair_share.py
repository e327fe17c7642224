"""Fair share through the real bot: the reported flood (one person sending /explain as fast as
Slack delivers it) against a second person's first question, over signed HTTP requests, real
Redis and the real result consumer, with `answer_jobs` acting as the worker one job at a time."""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from explain_core import defaults
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.slack_fake import SlackFake
from tests.support.work import answer_jobs

__all__ = ["module_redis", "slack"]  # fixtures used by name

PASSAGE = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."
FLOOD = 200


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace))
    under_test.start_delivery()
    yield under_test
    under_test.close()


def test_a_flood_waits_its_turn_behind_nobody_and_costs_the_channel_three_messages(bot: BotUnderTest) -> None:
    channel = unique("C")
    with ThreadPoolExecutor(8) as pool:  # as fast as eight connections deliver them
        replies = list(pool.map(lambda i: bot.command(f"Question {i}? | {PASSAGE}", channel=channel, user="UFLOOD"),
                                range(FLOOD)))
    assert all(r.status == 200 for r in replies)  # every one acknowledged within Slack's budget
    wait_until(lambda: sum(bool(bot.fake.responses(r.response_id)) for r in replies) == FLOOD - defaults.MAX_PER_USER,
               what="every refusal")
    refused = [bot.fake.responses(r.response_id)[0] for r in replies if bot.fake.responses(r.response_id)]
    assert all(r["response_type"] == "ephemeral" and "you have 3 questions waiting" in r["text"] for r in refused)
    posted = [c for c in bot.fake.calls("chat.postMessage", channel=channel) if c.status == 200]
    assert len(posted) == defaults.MAX_PER_USER  # three placeholders, not two hundred

    bot.command(f"Who? | {PASSAGE}", channel=channel, user="UOTHER")
    wait_until(lambda: len(bot.jobs()) == 2, what="the other person's job")
    assert [job.reply_to.user for job in bot.jobs()] == ["UFLOOD", "UOTHER"]  # one of the flood's ahead, not 200
    served: list[str | None] = []
    while len(served) < 4:  # a worker taking whatever the stream holds, as often as it can
        served += [job.reply_to.user for job in answer_jobs(bot.queue)]
    assert served == ["UFLOOD", "UOTHER", "UFLOOD", "UFLOOD"]
    answers = lambda: [c for c in bot.fake.calls("chat.update", channel=channel)  # noqa: E731
                       if c.status == 200 and "Normans" in str(c.args.get("blocks"))]
    wait_until(lambda: len(answers()) == 4, what="four answers")

