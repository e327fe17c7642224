"""The App Home tab end to end in HTTP mode: signed `app_home_opened` events -> the bot ->
real Redis (and a real worker with a tiny model) -> `views.publish` on the Slack fake.

One worker for the module, offering two models (the second a link to the tiny model's folder,
so it needs no second checkpoint; only a comparison would load it). It starts with the first
test and loads while the tests without a worker run. Tests keep apart by user and channel,
and the ones without a worker by namespace.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.ui.answers import Recent
from explain_core.present.summary import METHOD_LABELS, model_label
from explain_core.queue import JobResult
from tests.support.bot_harness import (
    BotUnderTest,
    app_home_opened_event,
    module_redis,
    settings_for,
    slack,
    unique,
    wait_until,
)
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackFake
from tests.support.work import answer_jobs
from tests.support.worker_process import WorkerProcess

__all__ = ["module_redis", "slack"]

# xdist: the whole module runs in one test process, so the worker and the bot start once.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker"), pytest.mark.xdist_group("bot.ui.test_app_home")]

PASSAGE = "The Bell Rock Lighthouse was built by Robert Stevenson between 1807 and 1810."
NAMESPACE = "home"
REPLY_TIMEOUT_S = 120.0  # includes the worker's TensorFlow start-up
ACK_LIMIT_S = 3.0  # Slack's


@pytest.fixture(scope="module")
def worker(module_redis: RedisServer, tiny_model_dir: Path, twin_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """Started, not awaited: tests that need it call `.running()`."""
    handle = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, tmp_path_factory.mktemp("worker"),
                                models=(tiny_model_dir, twin_model_dir))
    handle.start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def bot(slack: SlackFake, module_redis: RedisServer) -> Iterator[BotUnderTest]:
    """The bot of the worker's namespace, with its result consumer."""
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, NAMESPACE))
    under_test.start_delivery()
    yield under_test
    under_test.close()


@pytest.fixture()
def idle_bot(slack: SlackFake, module_redis: RedisServer) -> Iterator[BotUnderTest]:
    """A bot on a namespace of its own, where no worker runs: its questions wait."""
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, unique("idle")))
    yield under_test
    under_test.close()


# -- helpers ------------------------------------------------------------------------------------
def open_home(bot: BotUnderTest, user: str) -> dict[str, Any]:
    """Open `user`'s Home tab: the ack is Slack's 200 within 3 s; returns the one view published."""
    reply = bot.event(app_home_opened_event(user))
    assert reply.status == 200 and reply.elapsed_s < ACK_LIMIT_S, reply
    [call] = bot.fake.wait_for(lambda: bot.fake.calls("views.publish", user_id=user), 30, f"the Home of {user}")
    view: dict[str, Any] = call.args["view"]
    assert view["type"] == "home" and 0 < len(view["blocks"]) <= 100
    return view


def texts(view: dict[str, Any], kind: str) -> list[str]:
    """Every text of `kind` in the view: "mrkdwn" (formatted by Slack) or "text" (rich_text, literal)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == kind and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(view)
    return found


def placeholder_ts(bot: BotUnderTest, channel: str) -> str:
    [ts] = bot.fake.wait_for(lambda: [m["ts"] for m in bot.fake.messages_in(channel) if m.get("user") == BOT_USER_ID],
                             what=f"the placeholder in {channel}")
    return ts


def permalink(channel: str, ts: str) -> str:
    return f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}"


def asked(bot: BotUnderTest, user: str, count: int) -> None:
    """Wait until `user` has `count` questions listed (the intake lists one once it is queued)."""
    recent = Recent(bot.queue.redis, bot.queue.keys, 60)
    wait_until(lambda: len(recent.of(TEAM_ID, user)) == count, what=f"{count} questions of {user} queued")


# -- the cases ----------------------------------------------------------------------------------
def test_home_shows_the_ways_to_ask_idle_service_waiting_questions_and_literal_text(idle_bot: BotUnderTest) -> None:
    user, other = unique("U"), unique("U")
    first, second, elsewhere = unique("C"), unique("C"), unique("C")
    idle_bot.command(f"*bold* <!channel> @here who built it? | {PASSAGE}", channel=first, user=user)
    asked(idle_bot, user, 1)
    idle_bot.command(f"When was it built? | {PASSAGE}", channel=second, user=user)  # held behind the first
    idle_bot.command(f"Who built it? | {PASSAGE}", channel=elsewhere, user=other)
    asked(idle_bot, user, 2)
    asked(idle_bot, other, 1)
    idle_bot.fake.fail_next("chat.getPermalink", 500, channel=second, times=3)  # the call and the client's 2 retries

    view = open_home(idle_bot, user)
    shown = json.dumps(view, ensure_ascii=False)
    # the four ways to ask, each with an example
    assert "*1. The `/explain` command*" in shown and "`/explain Who built the lighthouse? | The lighthouse" in shown
    assert "*2. Mention me in a document's thread*" in shown and f"<@{BOT_USER_ID}> Who built the lighthouse?" in shown
    assert "*3. A direct message*" in shown and "*4. Ask about this message*" in shown
    # the service: no worker, and the two people's first questions wait (the held one is not in line yet)
    assert "No worker is running" in shown and "2 questions waiting, 0 being answered" in shown
    assert "show here while a worker runs" in shown
    # the person's questions, newest first, both waiting; the failed lookup only drops its link
    literal = "*bold* @\u2060channel @\u2060here who built it?"
    assert [t for t in texts(view, "text") if t in (literal, "When was it built?")] == ["When was it built?", literal]
    statuses = [t for t in texts(view, "mrkdwn") if t.startswith("waiting for an answer")]
    assert len(statuses) == 2
    assert "open the reply" not in statuses[0]
    assert f"<{permalink(first, placeholder_ts(idle_bot, first))}|open the reply>" in statuses[1]
    # nothing typed reaches mrkdwn, where it could format or ping
    mrkdwn = "\n".join(texts(view, "mrkdwn"))
    assert "bold" not in mrkdwn and "@here" not in mrkdwn and "@channel" not in mrkdwn
    assert "<!" not in mrkdwn.replace("<!date^", "")
    assert "Who built it?" not in shown  # the other person's question


def test_a_question_the_worker_could_not_answer_is_listed_as_not_answered(idle_bot: BotUnderTest) -> None:
    idle_bot.start_delivery()
    user, channel = unique("U"), unique("C")
    idle_bot.command(f"Who built it? | {PASSAGE}", channel=channel, user=user)
    asked(idle_bot, user, 1)
    answer_jobs(idle_bot.queue, lambda job: JobResult.failure("1-0", job.key, job.reply_to, "model_failed",
                                                              "the model failed on this input"))
    idle_bot.fake.wait_for(lambda: idle_bot.fake.calls("chat.update", channel=channel), what="the failure")

    view = open_home(idle_bot, user)
    assert not [t for t in texts(view, "mrkdwn") if t.startswith("answered")]
    [status] = [t for t in texts(view, "mrkdwn") if t.startswith("not answered: the reply says why ·")]
    assert f"<{permalink(channel, placeholder_ts(idle_bot, channel))}|open the reply>" in status


def test_redis_down_still_publishes_the_home_saying_so(slack: SlackFake, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(appendonly=False).start()
    under_test = BotUnderTest(slack, settings_for(slack, server.url, unique("down")))
    try:
        user = unique("U")
        under_test.command(f"Who built it? | {PASSAGE}", channel=unique("C"), user=user)
        asked(under_test, user, 1)
        server.stop()
        with caplog.at_level(logging.INFO):
            view = open_home(under_test, user)
        shown = json.dumps(view, ensure_ascii=False)
        assert "The service's status is unavailable right now" in shown
        assert "Your recent questions are unavailable right now" in shown
        assert "*4. Ask about this message*" in shown  # how to ask does not need Redis
        assert "Redis unavailable" in caplog.text
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
        assert "Traceback" not in caplog.text
        assert BOT_TOKEN not in caplog.text
    finally:
        under_test.close()
        server.close()


def test_home_lists_models_methods_workers_and_the_own_answered_question(
        bot: BotUnderTest, worker: WorkerProcess, tiny_model_dir: Path, twin_model_dir: Path) -> None:
    worker.running()
    user, other = unique("U"), unique("U")
    channel = unique("C")
    question = "Who built the Bell Rock Lighthouse?"
    assert bot.command(f"{question} | {PASSAGE}", channel=channel, user=user).status == 200
    ts = placeholder_ts(bot, channel)
    [update] = bot.fake.wait_for(lambda: [c.args for c in bot.fake.calls("chat.update", channel=channel)],
                                 REPLY_TIMEOUT_S, f"the answer in {channel}")
    assert update["ts"] == ts  # the answer replaced the placeholder: its link is the answer's

    view = open_home(bot, user)
    shown = json.dumps(view, ensure_ascii=False)
    assert "*1. The `/explain` command*" in shown and "*4. Ask about this message*" in shown
    assert ":large_green_circle: 1 worker running · 0 questions waiting, 0 being answered" in shown
    models = f"{model_label(str(tiny_model_dir))} (default), {twin_model_dir.name}"
    assert models in texts(view, "text")
    assert ", ".join(METHOD_LABELS.values()) in texts(view, "text")
    assert question in texts(view, "text")
    [status] = [t for t in texts(view, "mrkdwn") if t.startswith("answered ·")]
    assert f"<{permalink(channel, ts)}|open the reply>" in status

    assert bot.event({**app_home_opened_event(other), "tab": "messages"}).status == 200  # acked, no view
    view_of_other = open_home(bot, other)
    shown_of_other = json.dumps(view_of_other, ensure_ascii=False)
    assert question not in shown_of_other and permalink(channel, ts) not in shown_of_other
    assert "None yet" in shown_of_other
    time.sleep(0.5)  # time enough for a stray view
    assert len(bot.fake.calls("views.publish", user_id=user)) == 1  # one event, one view
    assert len(bot.fake.calls("views.publish", user_id=other)) == 1  # the Messages tab got none
