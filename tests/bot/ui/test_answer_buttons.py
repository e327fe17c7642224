"""The buttons under an answer, end to end: signed block_actions requests -> the bot (HTTP mode)
-> real Redis -> a real worker with a tiny model -> the Slack fake.

One worker for the module, serving two "models" (`QA_MODELS`: the tiny model and a symlink to
it, so a comparison costs no second checkpoint), so answers offer "Compare models" (the
one-model case, no such button, is checked in test_socket_mode.py, whose worker has one model).
Every click must be acknowledged well inside Slack's 3 s, do its work once however often it
arrives, and answer a stale or forged click with an ephemeral message, never a stack trace.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from bot.outcome.replies import tag
from bot.ui import blocks
from explain_core.present.summary import METHOD_LABELS
from explain_core.queue.feedback import HELPFUL, NOT_HELPFUL, Votes
from explain_core.worker.metrics import WorkerMetrics
from tests.support.bot_harness import (
    USER,
    BotUnderTest,
    Reply,
    block_action_payload,
    module_redis,
    settings_for,
    slack,
    unique,
)
from tests.support.redis_server import RedisServer, free_port
from tests.support.slack_fake import BOT_USER_ID, TEAM_ID, SlackFake
from tests.support.worker_process import WorkerProcess

__all__ = ["module_redis", "slack"]

# xdist: the whole module runs in one test process, so the worker and the bot start once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bot.ui.test_answer_buttons")]

PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended "
           "for a machine, the Analytical Engine designed by Charles Babbage.")
QUESTION = "Where did Ada live?"
ANSWER_PREFIXES = ("Answer: ", "No answer in this passage")
NAMESPACE = "buttons"
OTHER_USER = "UOTHER"
ACK_S = 3.0  # Slack's deadline for the ack of an interaction
REPLY_TIMEOUT_S = 120.0  # the first answer includes the worker's TensorFlow start-up
QUIET_S = 1.0  # how long a second reply that must not come is waited for


@pytest.fixture(scope="module")
def worker(module_redis: RedisServer, tiny_model_dir: Path, twin_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    handle = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, tmp_path_factory.mktemp("worker"),
                                models=(tiny_model_dir, twin_model_dir), QA_METRICS_PORT=str(free_port()))
    handle.start()  # TensorFlow loads while the bot starts
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def bot(slack: SlackFake, module_redis: RedisServer, worker: WorkerProcess) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, NAMESPACE))
    under_test.start_delivery()
    worker.running()
    yield under_test
    under_test.close()


@dataclass(frozen=True)
class Answered:
    """An `/explain` answer as Slack shows it now: `message` (the placeholder, edited), the job's
    `key` and the `tag` its buttons carry."""

    channel: str
    message: dict[str, Any]
    key: str

    @property
    def ts(self) -> str:
        return str(self.message["ts"])

    @property
    def tag(self) -> str:
        return tag(self.key)


def answer_updates(bot: BotUnderTest, channel: str, ts: str | None = None) -> list[dict[str, Any]]:
    """The chat.update calls in `channel` (of the message `ts`, if given) that show an answer."""
    return [c.args for c in bot.fake.calls("chat.update", channel=channel)
            if str(c.args.get("text") or "").startswith(ANSWER_PREFIXES) and ts in (None, c.args.get("ts"))]


def ask(bot: BotUnderTest, channel: str, user: str = USER) -> Answered:
    """`/explain QUESTION | PASSAGE`, answered (the placeholder edited, its picture in the thread)."""
    reply = bot.command(f"{QUESTION} | {PASSAGE}", channel=channel, user=user)
    assert reply.status == 200
    [update] = bot.fake.wait_for(lambda: answer_updates(bot, channel), REPLY_TIMEOUT_S, f"the answer in {channel}")
    bot.fake.wait_for(lambda: bot.fake.uploads(channel), 30, f"the picture in {channel}")
    [message] = [m for m in bot.fake.messages_in(channel) if m["ts"] == update["ts"]]
    return Answered(channel, message, f"command:{TEAM_ID}:{reply.trigger_id}")


def click(bot: BotUnderTest, answered: Answered, action_id: str, value: str, user: str = USER,
          message: dict[str, Any] | None = None) -> Reply:
    """Click an element of the answer (or of `message`); Slack must have its ack within 3 s."""
    reply = bot.click(answered.channel, message or answered.message, action_id, value, user)
    assert reply.status == 200 and reply.elapsed_s < ACK_S, reply
    return reply


def ephemerals(bot: BotUnderTest, channel: str, user: str = USER) -> list[dict[str, Any]]:
    return [e for e in bot.ephemerals(channel) if e.get("user") == user]


def next_ephemeral(bot: BotUnderTest, channel: str, seen: int, user: str = USER) -> str:
    """The text of `user`'s ephemeral number `seen + 1` in `channel` (waits for it)."""
    return str(bot.fake.wait_for(lambda: ephemerals(bot, channel, user)[seen:], 15,
                                 f"an ephemeral for {user} in {channel}")[0]["text"])


def thread_posts(bot: BotUnderTest, answered: Answered) -> list[dict[str, Any]]:
    """The bot's messages in the answer's thread, as they read now (after any edits)."""
    return [m for m in bot.fake.messages_in(answered.channel)
            if m.get("thread_ts") == answered.ts and m.get("user") == BOT_USER_ID]


def elements(message: dict[str, Any], block_type: str) -> list[dict[str, Any]]:
    return [e for block in message.get("blocks") or [] if block["type"] == block_type for e in block["elements"]]


def lines(message: dict[str, Any]) -> list[str]:
    """The text lines of a message's rich_text blocks, as a person reads them (styles dropped)."""
    return [("> " if part["type"] == "rich_text_quote" else "") + "".join(e.get("text", "") for e in part["elements"])
            for block in message.get("blocks") or [] if block["type"] == "rich_text" for part in block["elements"]]


def quiet() -> None:
    """Give a reply that must not come the time it would take to come."""
    time.sleep(QUIET_S)


# -- the cases ------------------------------------------------------------------------------------
def test_an_answer_has_its_buttons(bot: BotUnderTest, tiny_model_dir: Path) -> None:
    answered = ask(bot, unique("C"))
    [update] = answer_updates(bot, answered.channel)
    actions = elements(update, "actions")
    [select] = [e for e in actions if e["action_id"] == blocks.ACTION_ANOTHER_WAY]
    assert select["type"] == "static_select"
    assert [o["value"] for o in select["options"]] == [f"{m} {answered.tag}" for m in METHOD_LABELS if m != "vanilla"]
    [others] = [e for e in actions if e["action_id"] == blocks.ACTION_OTHER_ANSWERS]
    assert others["type"] == "button" and others["text"]["text"] == "Other answers" and others["value"] == answered.tag
    [compare] = [e for e in actions if e["action_id"] == blocks.ACTION_COMPARE]  # QA_MODELS names two
    assert compare["value"] == answered.tag
    [feedback] = elements(update, "context_actions")
    assert feedback["type"] == "feedback_buttons" and feedback["action_id"] == blocks.ACTION_FEEDBACK
    assert feedback["positive_button"]["value"] == f"{HELPFUL} {answered.tag}"
    assert feedback["negative_button"]["value"] == f"{NOT_HELPFUL} {answered.tag}"
    assert PASSAGE not in json.dumps(update["blocks"])  # a button carries the tag, never the passage

    click(bot, answered, blocks.ACTION_COMPARE, answered.tag)
    click(bot, answered, blocks.ACTION_COMPARE, answered.tag)  # a double click
    [placeholder] = bot.fake.wait_for(lambda: thread_posts(bot, answered), 15, "the comparison's placeholder")
    [reply] = bot.fake.wait_for(lambda: answer_updates(bot, answered.channel, placeholder["ts"]), REPLY_TIMEOUT_S,
                                "the comparison")
    shown = json.dumps(reply["blocks"], ensure_ascii=False)
    assert tiny_model_dir.name in shown and "tiny-twin" in shown
    assert "The models' answers are in this thread" in next_ephemeral(bot, answered.channel, 0)
    bot.fake.wait_for(lambda: len(bot.fake.uploads(answered.channel)) == 3, 30, "the two models' pictures")
    quiet()
    assert len(thread_posts(bot, answered)) == 1 and len(ephemerals(bot, answered.channel)) == 1
    assert {u.thread_ts for u in bot.fake.uploads(answered.channel)} == {answered.ts}


def test_feedback_is_one_vote_per_person_counted_and_exported(bot: BotUnderTest, worker: WorkerProcess,
                                                              tiny_model_dir: Path) -> None:
    answered = ask(bot, unique("C"))
    votes = Votes(bot.queue.redis, bot.queue.keys)
    model = str(tiny_model_dir)

    click(bot, answered, blocks.ACTION_FEEDBACK, f"{HELPFUL} {answered.tag}")
    thanks = next_ephemeral(bot, answered.channel, 0)
    assert thanks.startswith("Thanks!") and "found this answer helpful" in thanks
    quiet()
    assert len(ephemerals(bot, answered.channel)) == 1  # thanked once, and only the voter
    assert bot.ephemerals(answered.channel) == ephemerals(bot, answered.channel)
    [vote] = [v for v in votes.all() if v.tag == answered.tag]
    record = bot.services.flow.answers.get(answered.tag)
    assert record is not None
    assert (vote.key, vote.voter, vote.team, vote.channel, vote.vote) == (
        answered.key, USER, TEAM_ID, answered.channel, HELPFUL)
    assert (vote.model, vote.method, vote.score) == (model, "vanilla", record.score)
    assert f"({round(vote.score * 100)}%)" in answered.message["text"]  # the confidence the answer showed
    stored = json.dumps(bot.queue.redis.hgetall(bot.queue.keys.votes))
    assert all(word not in stored for word in ("Lovelace", "London", "Babbage", "Ada"))  # no passage, no question

    click(bot, answered, blocks.ACTION_FEEDBACK, f"{NOT_HELPFUL} {answered.tag}")  # changes the vote
    assert "not helpful (changed from your earlier vote)" in next_ephemeral(bot, answered.channel, 1)
    assert [(v.voter, v.vote) for v in votes.all() if v.tag == answered.tag] == [(USER, NOT_HELPFUL)]
    assert votes.counts() == {(model, NOT_HELPFUL): 1}

    click(bot, answered, blocks.ACTION_FEEDBACK, f"{HELPFUL} {answered.tag}", user=OTHER_USER)  # a second person
    assert "found this answer helpful" in next_ephemeral(bot, answered.channel, 0, OTHER_USER)
    mine = sorted((v.voter, v.vote) for v in votes.all() if v.tag == answered.tag)
    assert mine == sorted([(OTHER_USER, HELPFUL), (USER, NOT_HELPFUL)])
    assert votes.counts() == {(model, NOT_HELPFUL): 1, (model, HELPFUL): 1}

    env = {**os.environ, "REDIS_URL": bot.settings.redis.url, "QA_NAMESPACE": NAMESPACE}
    export = subprocess.run([str(Path(sys.executable).with_name("qa-feedback"))], env=env, capture_output=True,
                            text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert sorted((v["voter"], v["vote"], v["tag"], v["key"], v["model"], v["method"]) for v in lines) == sorted([
        (OTHER_USER, HELPFUL, answered.tag, answered.key, model, "vanilla"),
        (USER, NOT_HELPFUL, answered.tag, answered.key, model, "vanilla")])
    assert "Lovelace" not in export.stdout and "2 vote(s)" in export.stderr

    metrics = WorkerMetrics()
    metrics.watch_votes(votes.counts)
    for vote_value in (HELPFUL, NOT_HELPFUL):
        assert metrics.registry.get_sample_value("qa_feedback_votes", {"model": model, "vote": vote_value}) == 1
    assert f'qa_feedback_votes{{model="{model}",vote="helpful"}} 1.0' in generate_latest(metrics.registry).decode()
    assert worker.metric(f'qa_feedback_votes{{model="{model}",vote="not_helpful"}}') == 1  # the worker's /metrics


def test_explain_another_way_posts_the_new_picture_in_the_thread_once(bot: BotUnderTest) -> None:
    answered = ask(bot, unique("C"))
    value = f"integrated_gradients {answered.tag}"
    click(bot, answered, blocks.ACTION_ANOTHER_WAY, value)
    click(bot, answered, blocks.ACTION_ANOTHER_WAY, value)  # a double click: one job, one reply
    assert "explained with integrated gradients is in this thread" in next_ephemeral(bot, answered.channel, 0)
    [placeholder] = bot.fake.wait_for(lambda: thread_posts(bot, answered), 15, "the new placeholder")
    [update] = bot.fake.wait_for(lambda: answer_updates(bot, answered.channel, placeholder["ts"]), REPLY_TIMEOUT_S,
                                 "the answer explained another way")
    assert "integrated gradients" in json.dumps(update["blocks"], ensure_ascii=False)
    uploads = bot.fake.wait_for(lambda: bot.fake.uploads(answered.channel)[1:], 30, "the new picture")
    assert uploads[0].thread_ts == answered.ts and uploads[0].data.startswith(b"\x89PNG")
    # The new answer has buttons of its own, without the method it shows.
    [select] = [e for e in elements(update, "actions") if e["action_id"] == blocks.ACTION_ANOTHER_WAY]
    assert [o["value"].split()[0] for o in select["options"]] == ["vanilla", "grad_x_input", "smoothgrad"]

    click(bot, answered, blocks.ACTION_ANOTHER_WAY, value)  # again, once it is there
    assert "is in this thread" in next_ephemeral(bot, answered.channel, 1)
    quiet()
    assert bot.jobs() == []
    assert len(thread_posts(bot, answered)) == 1 and len(bot.fake.uploads(answered.channel)) == 2
    bot_messages = [m for m in bot.fake.messages_in(answered.channel) if m.get("user") == BOT_USER_ID]
    assert len(bot_messages) == 2  # the answer and the one explained another way


def test_anyone_may_explain_a_public_thread_document_another_way_even_once_its_cache_expired(
        bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    bot.mention(channel, QUESTION, thread_ts=root["ts"])
    [update] = bot.fake.wait_for(lambda: answer_updates(bot, channel), REPLY_TIMEOUT_S, "the answer in the thread")
    [message] = [m for m in bot.fake.messages_in(channel) if m["ts"] == update["ts"]]
    assert message["thread_ts"] == root["ts"]
    [value] = [o["value"] for e in elements(message, "actions") if e["action_id"] == blocks.ACTION_ANOTHER_WAY
               for o in e["options"] if o["value"].startswith("grad_x_input ")]
    assert bot.queue.redis.delete(bot.queue.keys.document(TEAM_ID, channel, root["ts"])) == 1
    reply = bot.click(channel, message, blocks.ACTION_ANOTHER_WAY, value, OTHER_USER)  # not the asker: public
    assert reply.status == 200 and reply.elapsed_s < ACK_S
    [second] = bot.fake.wait_for(lambda: answer_updates(bot, channel)[1:], REPLY_TIMEOUT_S, "the other explanation")
    assert "gradient × input" in json.dumps(second["blocks"], ensure_ascii=False) and OTHER_USER in json.dumps(
        second["blocks"])
    [placeholder] = [m for m in bot.fake.messages_in(channel) if m["ts"] == second["ts"]]
    assert placeholder["thread_ts"] == root["ts"]  # in the document's thread, read again from its root
    assert bot.ephemerals(channel) == []


def test_other_answers_are_posted_in_the_thread_once(bot: BotUnderTest) -> None:
    answered = ask(bot, unique("C"))
    click(bot, answered, blocks.ACTION_OTHER_ANSWERS, answered.tag)
    [post] = bot.fake.wait_for(lambda: thread_posts(bot, answered), 15, "the other answers")
    assert post["text"] == f"Top answers to “{QUESTION}”"
    record = bot.services.flow.answers.get(answered.tag)
    assert record is not None and 1 <= len(record.alternatives) <= 3
    expected = [f"Top answers to: {QUESTION}"]
    for i, alternative in enumerate(record.alternatives, 1):
        percent = f"({round(alternative.score * 100)}%)"
        if alternative.answer:
            assert alternative.sentence in PASSAGE
            expected += [f"{i}. {alternative.answer} {percent}", f"> {alternative.sentence}"]
        else:
            expected.append(f"{i}. No answer in this passage {percent}")
    assert lines(post) == expected

    click(bot, answered, blocks.ACTION_OTHER_ANSWERS, answered.tag)
    assert "The other answers are in this thread already" in next_ephemeral(bot, answered.channel, 0)
    quiet()
    assert len(thread_posts(bot, answered)) == 1


def test_stale_private_and_forged_clicks_are_told_privately(bot: BotUnderTest,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    answered = ask(bot, unique("C"))
    channel, seen = answered.channel, 0

    def told(user: str = USER) -> str:
        nonlocal seen
        if user != USER:
            return next_ephemeral(bot, channel, 0, user)
        seen += 1
        return next_ephemeral(bot, channel, seen - 1)

    # Another person may not explain someone's private /explain passage again, nor show more of it.
    click(bot, answered, blocks.ACTION_ANOTHER_WAY, f"smoothgrad {answered.tag}", user=OTHER_USER)
    assert "given to me privately with `/explain`" in told(OTHER_USER)
    click(bot, answered, blocks.ACTION_OTHER_ANSWERS, answered.tag, user=OTHER_USER)
    bot.fake.wait_for(lambda: len(ephemerals(bot, channel, OTHER_USER)) == 2, 15, "the second refusal")
    assert "given to me privately with `/explain`" in ephemerals(bot, channel, OTHER_USER)[1]["text"]
    assert not [m for m in bot.fake.messages_in(channel) if m.get("thread_ts") == answered.ts]

    # The thread's document expired: the passage is gone (and the click can be tried again: nothing claimed).
    document = bot.queue.keys.document(TEAM_ID, channel, answered.ts)
    assert bot.queue.redis.delete(document) == 1
    for _ in range(2):
        click(bot, answered, blocks.ACTION_ANOTHER_WAY, f"smoothgrad {answered.tag}")
        assert "this thread's is gone" in told()

    # Forged values.
    click(bot, answered, blocks.ACTION_FEEDBACK, "nonsense")
    assert "I couldn't read that button" in told()
    click(bot, answered, blocks.ACTION_FEEDBACK, f"great {answered.tag}")
    assert "I couldn't read that vote" in told()
    forged = block_action_payload(bot.fake, channel, answered.message, blocks.ACTION_ANOTHER_WAY,
                                  f"smoothgrad {answered.tag}")
    forged["actions"][0]["selected_option"]["value"] = f"telepathy {answered.tag}"
    assert bot.interactive(forged).status == 200
    assert "I don't know that way of explaining" in told()
    click(bot, answered, blocks.ACTION_OTHER_ANSWERS, "nonsense")
    assert "this answer is older (or no longer known)" in told()

    # The answer's record is kept as long as the thread's document; once it is gone, every button says so.
    record_key = bot.queue.keys.answer(answered.tag)
    assert bot.settings.doc_cache_ttl_s - 60 < bot.queue.redis.ttl(record_key) <= bot.settings.doc_cache_ttl_s
    assert bot.queue.redis.delete(record_key) == 1
    for action_id, value in [(blocks.ACTION_OTHER_ANSWERS, answered.tag),
                             (blocks.ACTION_ANOTHER_WAY, f"grad_x_input {answered.tag}"),
                             (blocks.ACTION_COMPARE, answered.tag),
                             (blocks.ACTION_FEEDBACK, f"{HELPFUL} {answered.tag}")]:
        click(bot, answered, action_id, value)
        message = told()
        assert "this answer is older" in message and "Ask the question again" in message, message

    quiet()
    assert bot.jobs() == [] and thread_posts(bot, answered) == []
    assert [v for v in Votes(bot.queue.redis, bot.queue.keys).all() if v.tag == answered.tag] == []
    assert len(ephemerals(bot, channel)) == seen and len(ephemerals(bot, channel, OTHER_USER)) == 2
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


def test_a_click_where_the_bot_cannot_post_is_answered_through_the_response_url(bot: BotUnderTest) -> None:
    answered = ask(bot, unique("C"))
    bot.fake.close_channel(answered.channel, "not_in_channel")  # the bot was removed from the channel
    payload = block_action_payload(bot.fake, answered.channel, answered.message, blocks.ACTION_OTHER_ANSWERS,
                                   answered.tag)
    reply = bot.interactive(payload)
    assert reply.status == 200 and reply.elapsed_s < ACK_S
    [told] = bot.fake.wait_for(lambda: bot.fake.responses(payload["response_url"].rsplit("/", 1)[1]), 15,
                               "the message through the response_url")
    assert told["response_type"] == "ephemeral" and told["replace_original"] is False
    assert "I couldn't post the other answers" in told["text"] and "not a member" in told["text"]
    assert thread_posts(bot, answered) == []
