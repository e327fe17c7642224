"""The whole service end to end: signed Slack requests -> bot (HTTP mode) -> real Redis ->
a real TensorFlow worker with a tiny model -> the bot's result consumer -> the Slack fake.

One worker for the module (TensorFlow start-up is the slow part). The first test runs
with the worker down, to check that a question waits with its placeholder and is answered
once a worker starts; the others reuse that worker. The tiny model has random weights,
so tests check the shape of the reply (an answer or "no answer", the context line, the
PNG in the thread), not what the answer is.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.pdfs import make_pdf
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_USER_ID, SlackFake
from tests.support.worker_process import WorkerProcess

__all__ = ["module_redis", "slack"]

# xdist: the whole module runs in one test process, so the worker and the bot start once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bot.test_e2e")]

PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended "
           "for a machine, the Analytical Engine designed by Charles Babbage.")
REPLY_TIMEOUT_S = 120.0
NAMESPACE = "e2e"


@pytest.fixture(scope="module")
def worker(module_redis: RedisServer, tiny_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """The worker's handle; tests call `.running()` (the first test starts it late on purpose)."""
    handle = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, tmp_path_factory.mktemp("worker"))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def bot(slack: SlackFake, module_redis: RedisServer) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, NAMESPACE))
    under_test.start_delivery()
    under_test.start_sweeper()  # as `bot.app.start` runs them
    yield under_test
    under_test.close()


def placeholder_ts(bot: BotUnderTest, channel: str) -> str:
    """The ts of the one message the bot posted in `channel` (its placeholder)."""
    def posted() -> list[str]:
        return [m["ts"] for m in bot.fake.messages_in(channel) if m.get("user") == BOT_USER_ID]
    [ts] = bot.fake.wait_for(posted, what=f"the placeholder in {channel}")
    return ts


def assert_answered(bot: BotUnderTest, channel: str, thread_ts: str | None) -> dict:
    """One reply in `channel` (the placeholder, updated) and one PNG in its thread; returns the reply."""
    ts = placeholder_ts(bot, channel)
    [update] = bot.fake.wait_for(lambda: [c.args for c in bot.fake.calls("chat.update", channel=channel)],
                                 REPLY_TIMEOUT_S, f"the answer in {channel}")
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), 30, f"the picture in {channel}")
    assert update["ts"] == ts
    assert update["text"].startswith(("Answer: ", "No answer in this passage"))
    shown = json.dumps(update["blocks"], ensure_ascii=False)
    assert "vanilla gradient" in shown and "window" in shown
    assert upload.data.startswith(b"\x89PNG\r\n\x1a\n") and upload.alt_txt
    assert upload.thread_ts == (thread_ts or ts)
    wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, what="the result acked")
    assert len(bot.fake.calls("chat.update", channel=channel)) == 1
    assert len(bot.fake.uploads(channel)) == 1
    return update


def test_worker_down_placeholder_waits_then_the_answer_arrives(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.stop()  # down, whatever ran before
    channel = unique("C")
    bot.command(f"Where did Ada live? | {PASSAGE}", channel=channel)
    placeholder_ts(bot, channel)
    time.sleep(2.0)
    assert bot.fake.calls("chat.update", channel=channel) == []  # the placeholder stays
    assert len(bot.jobs()) == 1
    worker.running()
    assert_answered(bot, channel, None)


def test_slash_command_with_passage(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    reply = bot.command(f"Where did Ada live? | {PASSAGE}", channel=channel)
    assert reply.status == 200
    update = assert_answered(bot, channel, None)
    buttons = {e["action_id"] for block in update["blocks"] if block["type"] == "actions" for e in block["elements"]}
    assert buttons == {"answer_another_way", "answer_other_answers"}  # one model: nothing to compare


def test_empty_command_then_the_form(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    reply = bot.command("", channel=channel)
    view_id, view = bot.opened_view(reply.trigger_id)
    bot.view_submission(view_id, view, {"question": "Who designed the engine?", "passage": PASSAGE})
    assert_answered(bot, channel, None)


@pytest.mark.parametrize("kind", ["pasted", "txt", "pdf"])
def test_thread_mention_about_a_document(bot: BotUnderTest, worker: WorkerProcess, kind: str) -> None:
    worker.running()
    channel = unique("C")
    if kind == "pasted":
        root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    else:
        data = PASSAGE.encode() if kind == "txt" else make_pdf(PASSAGE.split(". "))
        file = bot.fake.add_file(f"notes.{kind}", data)
        root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [file]})
    bot.mention(channel, "Where did Ada live?", thread_ts=root["ts"])
    assert_answered(bot, channel, root["ts"])


def test_direct_message(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("D")
    event = bot.direct_message(channel, f"Where did Ada live? | {PASSAGE}")
    assert_answered(bot, channel, event["ts"])


def test_message_shortcut(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    message = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    reply = bot.message_shortcut(channel, message)
    view_id, view = bot.opened_view(reply.trigger_id)
    bot.view_submission(view_id, view, {"question": "When did she publish?"})
    assert_answered(bot, channel, message["ts"])


def test_rate_limited_post_gives_one_reply_after_the_retry(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    bot.fake.fail_next("chat.postMessage", 429, channel=channel, retry_after=1)
    bot.command(f"Where did Ada live? | {PASSAGE}", channel=channel)
    assert_answered(bot, channel, None)
    assert [c.status for c in bot.fake.calls("chat.postMessage", channel=channel)] == [429, 200]


def test_an_outage_of_chat_update_delays_the_answer_and_loses_nothing(bot: BotUnderTest,
                                                                       worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    bot.fake.fail_for("chat.update", 503, 2.0, channel=channel)
    bot.command(f"Where did Ada live? | {PASSAGE}", channel=channel)
    update = bot.fake.wait_for(lambda: [c.args for c in bot.fake.calls("chat.update", channel=channel)
                                        if c.status == 200], REPLY_TIMEOUT_S, "the answer after the outage")[0]
    assert update["ts"] == placeholder_ts(bot, channel)
    assert any(c.status == 503 for c in bot.fake.calls("chat.update", channel=channel))
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), 30, "the picture")
    assert upload.thread_ts == update["ts"]


def test_bad_input_never_reaches_the_worker(bot: BotUnderTest, worker: WorkerProcess) -> None:
    worker.running()
    channel = unique("C")
    scan = bot.fake.add_file("scan.pdf", make_pdf([""]))
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [scan]})
    bot.mention(channel, "What does it say?", thread_ts=root["ts"])
    assert "no text layer" in bot.wait_ephemeral(channel)["text"]
    time.sleep(1.0)
    assert bot.jobs() == []
    assert [m for m in bot.fake.messages_in(channel) if m.get("user") == BOT_USER_ID] == []
    assert bot.fake.calls("chat.update", channel=channel) == []
