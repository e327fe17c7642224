"""Who may question a passage, and what happens once it is no longer kept: the bot driven
by signed requests, its real Redis, the Slack fake.

- A passage given with `/explain` is seen only by its asker; the bot's reply roots a thread
  whose cached document is that passage. Before: anyone in the channel could mention the
  bot in that thread and question the passage. Now only the asker can.
- Once the thread's document has expired, a question in that thread used to be answered
  about the thread's first message, which is the bot's own reply ("Answer: London (90%)").
  Now the asker is told that the passage is gone and how to ask again.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.intake.documents import Document
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_ID, BOT_USER_ID, TEAM_ID, SlackFake

__all__ = ["module_redis", "slack"]  # fixtures used by name

PASSAGE = "The lighthouse was built by Robert Stevenson in 1811 and paid for by the Northern Lighthouse Board."
OWNER, OTHER = "UOWNER", "UOTHER"


@pytest.fixture()
def bot(slack: SlackFake, module_redis: RedisServer, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace))
    yield under_test
    under_test.close()


@pytest.fixture()
def forgetful_bot(slack: SlackFake, module_redis: RedisServer, namespace: str) -> Iterator[BotUnderTest]:
    """A bot that keeps thread documents for 2 seconds (QA_DOC_CACHE_TTL_S=2) instead of a day."""
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, doc_cache_ttl_s=2))
    yield under_test
    under_test.close()


def explain_privately(bot: BotUnderTest, channel: str) -> str:
    """`/explain question | passage` from OWNER; the ts of the bot's reply, once its thread has the passage."""
    bot.command(f"Who built it? | {PASSAGE}", channel=channel, user=OWNER)
    root = bot.fake.wait_for(lambda: [m for m in bot.fake.messages_in(channel) if m.get("bot_id")],
                             what="the bot's reply")[0]
    wait_until(lambda: bot.queue.redis.exists(document_key(bot, channel, root["ts"])), what="the thread's document")
    return str(root["ts"])


def document_key(bot: BotUnderTest, channel: str, ts: str) -> str:
    return bot.queue.keys.document(TEAM_ID, channel, ts)


def placeholders_in(bot: BotUnderTest, channel: str, thread_ts: str) -> list[dict]:
    return [c.args for c in bot.fake.calls("chat.postMessage", channel=channel, thread_ts=thread_ts)]


def test_only_the_asker_can_question_a_passage_given_privately(bot: BotUnderTest) -> None:
    channel = unique("C")
    root_ts = explain_privately(bot, channel)
    stored = Document.from_json(bot.queue.redis.get(document_key(bot, channel, root_ts)))
    assert (stored.text, stored.private_to) == (PASSAGE, OWNER)

    bot.mention(channel, "Who paid for it?", thread_ts=root_ts, user=OTHER)
    told = bot.wait_ephemeral(channel)
    assert told["user"] == OTHER and "given to me privately with `/explain`" in told["text"]
    assert placeholders_in(bot, channel, root_ts) == []
    assert len(bot.jobs()) == 1  # the asker's own first question only

    bot.mention(channel, "Who paid for it?", thread_ts=root_ts, user=OWNER)
    bot.fake.wait_for(lambda: placeholders_in(bot, channel, root_ts), what="the asker's follow-up placeholder")
    assert len(bot.ephemerals(channel)) == 1


def test_a_public_document_answers_everyone(bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    bot.mention(channel, "Who built it?", thread_ts=root["ts"], user=OTHER)
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == PASSAGE
    assert Document.from_json(bot.queue.redis.get(document_key(bot, channel, root["ts"]))).private_to is None


def test_the_shortcut_on_the_bots_reply_reads_the_reply_not_the_private_passage(bot: BotUnderTest) -> None:
    channel = unique("C")
    reply = bot.fake.add_message(channel, {"user": BOT_USER_ID, "bot_id": BOT_ID, "text": "Answer: Robert Stevenson"})
    private = Document(PASSAGE, ("message",), private_to=OWNER)
    bot.services.documents.remember(TEAM_ID, channel, reply["ts"], private)

    opened = bot.message_shortcut(channel, reply, user=OTHER)
    _view_id, view = bot.opened_view(opened.trigger_id)
    bot.view_submission(unique("V"), view, {"question": "Who paid for it?"}, user=OTHER)
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == "Answer: Robert Stevenson"
    assert Document.from_json(bot.queue.redis.get(document_key(bot, channel, reply["ts"]))) == private  # unchanged
    assert not bot.queue.redis.exists(bot.queue.keys.stash(TEAM_ID, channel, reply["ts"]))  # taken once used


def test_a_question_after_the_passage_expired_is_told_how_to_ask_again(forgetful_bot: BotUnderTest) -> None:
    bot = forgetful_bot
    channel = unique("C")
    root_ts = explain_privately(bot, channel)
    wait_until(lambda: not bot.queue.redis.exists(document_key(bot, channel, root_ts)), timeout=5,
               what="the document to expire (QA_DOC_CACHE_TTL_S=2)")

    bot.mention(channel, "Who paid for it?", thread_ts=root_ts, user=OWNER)
    told = bot.wait_ephemeral(channel)
    assert told["user"] == OWNER
    assert "I keep a thread's passage for 2 seconds, and this thread's is gone" in told["text"]
    assert "/explain your question | the passage" in told["text"]
    assert placeholders_in(bot, channel, root_ts) == []
    assert len(bot.jobs()) == 1  # nothing queued about the bot's own reply
    assert not bot.queue.redis.exists(document_key(bot, channel, root_ts))  # the reply was not cached as a passage
