"""`qa-bot` in Socket Mode (the default mode), end to end.

The shipped console script runs as a subprocess with `BOT_MODE=socket`. It calls
`apps.connections.open` on the Slack fake with its app-level token and connects, through
slack_sdk's own WebSocket client, to the fake's Socket Mode server (tests/support/socket_mode_fake.py),
which sends Slack's envelopes and records the acks. Questions go through a private
redis-server to a real worker process with a tiny model, and the answers come back to the
fake's Web API. One bot and one worker serve the module; tests keep apart by channel.

Tests check what a person sees: the ack's content (help, form errors), the final text of
the bot's reply in the channel, the picture in the thread, the form that opens.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.ui import blocks
from explain_core.queue import JobQueue
from explain_core.queue.feedback import HELPFUL, Votes
from tests.support.bot_harness import (
    ROOT,
    USER,
    app_home_opened_event,
    block_action_payload,
    command_payload,
    event_callback,
    mention_event,
    message_shortcut_payload,
    module_redis,
    opened_view,
    slack,
    unique,
    view_submission_payload,
    wait_until,
)
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_TOKEN, BOT_USER_ID, SlackFake
from tests.support.socket_mode_fake import APP_TOKEN, Ack, SocketModeFake, attached
from tests.support.worker_process import WorkerProcess

__all__ = ["module_redis", "slack"]

# xdist: the whole module runs in one test process, so the worker and the qa-bot process start once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bot.test_socket_mode")]

QA_BOT = Path(sys.executable).with_name("qa-bot")  # the console script the package installs
NAMESPACE = "socket"
PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended "
           "for a machine, the Analytical Engine designed by Charles Babbage.")
ANSWER_PREFIXES = ("Answer: ", "No answer in this passage")
CONNECT_TIMEOUT_S = 60.0  # bot start-up (imports, auth.test, Redis) on a busy 2-core machine
ACK_TIMEOUT_S = 10.0  # Slack waits 3 s; the bound leaves room for a loaded machine
REPLY_TIMEOUT_S = 120.0  # includes the worker's TensorFlow start-up for the first question
STOP_TIMEOUT_S = 30.0


@dataclass
class BotProcess:
    """The `qa-bot` subprocess and its log (stdout and stderr)."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        assert self.proc.poll() is None, f"qa-bot exited with {self.proc.returncode}:\n{self.log()[-3000:]}"


def bot_env(slack: SlackFake, redis_url: str, app_token: str) -> dict[str, str]:
    """The environment a user would set, pointed at the fakes; nothing inherited reaches a real Slack."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SLACK_", "BOT_MODE")) and not name.lower().endswith("_proxy")}
    env.update({"BOT_MODE": "socket", "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": app_token,
                "SLACK_API_URL": slack.api_url, "REDIS_URL": redis_url, "QA_NAMESPACE": NAMESPACE,
                "QA_BOT_METRICS_PORT": "0"})  # no shared default port when tests run at once
    return env


@pytest.fixture(scope="module")
def socket_mode(slack: SlackFake) -> Iterator[SocketModeFake]:
    with attached(slack) as server:
        yield server


@pytest.fixture(scope="module")
def worker(module_redis: RedisServer, tiny_model_dir: Path, twin_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """Started, not awaited: TensorFlow loads while the bot connects and the ack-only tests run.
    It offers two models to compare (the tiny one twice), so every button of an answer is there."""
    handle = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, tmp_path_factory.mktemp("worker"),
                                models=(tiny_model_dir, twin_model_dir))
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def qa_bot(slack: SlackFake, socket_mode: SocketModeFake, module_redis: RedisServer, worker: WorkerProcess,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    """`qa-bot` connected to the fake (its first Socket Mode connection is open)."""
    assert QA_BOT.exists(), f"{QA_BOT} is missing: install the package (make install)"
    log_path = tmp_path_factory.mktemp("qa-bot") / "qa-bot.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(QA_BOT)], cwd=ROOT, env=bot_env(slack, module_redis.url, APP_TOKEN),
                                stdout=log, stderr=subprocess.STDOUT)
    bot = BotProcess(proc, log_path)
    try:
        def connected() -> bool:
            bot.check_alive()
            return bool(socket_mode.links())
        wait_until(connected, CONNECT_TIMEOUT_S, "qa-bot to open its Socket Mode connection", interval=0.1)
        yield bot
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- helpers ------------------------------------------------------------------------------------
def wait_ack(socket_mode: SocketModeFake, envelope_id: str) -> Ack:
    """The one ack of an envelope (Slack takes the first; a second would be a bug)."""
    wait_until(lambda: socket_mode.acks(envelope_id), ACK_TIMEOUT_S, f"the ack of {envelope_id}")
    [ack] = socket_mode.acks(envelope_id)
    return ack


def answers(slack: SlackFake, channel: str) -> list[dict[str, Any]]:
    """The bot's messages in `channel` that show an answer, as they read now (after any edits)."""
    return [m for m in slack.messages_in(channel)
            if m.get("user") == BOT_USER_ID and str(m.get("text") or "").startswith(ANSWER_PREFIXES)]


def wait_answered(slack: SlackFake, worker: WorkerProcess, channel: str, question: str,
                  thread_ts: str | None) -> dict[str, Any]:
    """One answer in `channel` for `question`, with its picture in the thread; returns the reply."""
    def answered() -> list[dict[str, Any]]:
        assert worker.alive, f"worker exited:\n{worker.log()[-3000:]}"
        return answers(slack, channel)
    slack.wait_for(answered, REPLY_TIMEOUT_S, f"the answer in {channel}")
    [upload] = slack.wait_for(lambda: slack.uploads(channel), 30, f"the picture in {channel}")
    [reply] = answers(slack, channel)
    assert question in json.dumps(reply["blocks"], ensure_ascii=False)
    assert upload.data.startswith(b"\x89PNG\r\n\x1a\n") and upload.alt_txt
    assert upload.thread_ts == (thread_ts or reply["ts"])
    return reply


def refused(slack: SlackFake, redis: RedisServer) -> subprocess.CompletedProcess[str]:
    """`qa-bot` with a wrong app-level token, run to its end (bounded: it must stop by itself)."""
    return subprocess.run([str(QA_BOT)], cwd=ROOT, env=bot_env(slack, redis.url, "xapp-wrong"),
                          capture_output=True, text=True, timeout=60)


# -- the cases ----------------------------------------------------------------------------------
def test_help_is_the_content_of_the_ack(qa_bot: BotProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    envelope_id = socket_mode.slash_command(command_payload(slack, "help", channel=unique("C")))
    ack = wait_ack(socket_mode, envelope_id)
    assert ack.payload is not None, "the help must travel in the ack"
    assert ack.payload["text"] == "How to use the explain bot"
    shown = json.dumps(ack.payload["blocks"], ensure_ascii=False)
    assert "`/explain What is X? | the passage…`" in shown and "Ask about this message" in shown


def test_bad_input_is_answered_in_the_ack(qa_bot: BotProcess, slack: SlackFake,
                                          socket_mode: SocketModeFake) -> None:
    envelope_id = socket_mode.slash_command(command_payload(slack, f"| {PASSAGE}", channel=unique("C")))
    ack = wait_ack(socket_mode, envelope_id)
    assert ack.payload is not None and "The question is empty" in ack.payload["text"]


def test_message_shortcut_opens_the_form(qa_bot: BotProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    channel = unique("C")
    message = slack.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    shortcut = message_shortcut_payload(slack, channel, message)
    ack = wait_ack(socket_mode, socket_mode.interactive(shortcut))
    assert ack.payload is None  # a shortcut's ack is empty; the form comes through views.open
    _view_id, view = opened_view(slack, shortcut["trigger_id"])
    shown = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "modal" and f"the message ({len(PASSAGE)} characters)" in shown
    assert [block["block_id"] for block in view["blocks"] if block["type"] == "input"] == ["question"]


def test_opening_the_home_tab_publishes_it(qa_bot: BotProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    user = unique("U")
    started = time.monotonic()
    ack = wait_ack(socket_mode, socket_mode.event(event_callback(app_home_opened_event(user))))
    assert time.monotonic() - started < 3.0 and ack.payload is None  # within Slack's 3 s; the view comes after
    [call] = slack.wait_for(lambda: slack.calls("views.publish", user_id=user), ACK_TIMEOUT_S, f"the Home of {user}")
    view = call.args["view"]
    shown = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    assert "*1. The `/explain` command*" in shown and "*4. Ask about this message*" in shown
    assert " waiting, " in shown and " being answered" in shown  # the service's status, read from Redis
    assert "None yet" in shown  # a person who never asked


def test_form_errors_in_the_ack_then_the_corrected_form_is_answered(
        qa_bot: BotProcess, worker: WorkerProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    channel = unique("C")
    command = command_payload(slack, "", channel=channel)
    assert wait_ack(socket_mode, socket_mode.slash_command(command)).payload is None
    view_id, view = opened_view(slack, command["trigger_id"])

    rejected = wait_ack(socket_mode, socket_mode.interactive(
        view_submission_payload(view_id, view, {"question": "  ", "passage": ""})))
    assert rejected.payload is not None and rejected.payload["response_action"] == "errors"
    errors = rejected.payload["errors"]
    assert set(errors) == {"question", "passage"}
    assert "question is empty" in errors["question"] and "passage has no text" in errors["passage"]

    question = "Who designed the engine?"
    accepted = wait_ack(socket_mode, socket_mode.interactive(
        view_submission_payload(view_id, view, {"question": question, "passage": PASSAGE})))
    assert accepted.payload is None  # the form closes
    wait_answered(slack, worker, channel, question, None)


def test_question_answered_through_redis_and_the_worker(
        qa_bot: BotProcess, worker: WorkerProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    channel = unique("C")
    question = "Where did Ada live?"
    envelope_id = socket_mode.slash_command(command_payload(slack, f"{question} | {PASSAGE}", channel=channel))
    assert wait_ack(socket_mode, envelope_id).payload is None  # the answer comes later, in the channel
    reply = wait_answered(slack, worker, channel, question, None)
    assert "vanilla gradient" in json.dumps(reply["blocks"], ensure_ascii=False)


def test_event_retried_by_slack_is_answered_once(
        qa_bot: BotProcess, worker: WorkerProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    channel = unique("C")
    document = slack.add_file("notes.txt", PASSAGE.encode(), mimetype="text/plain")
    root = slack.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [document]})
    question = "Where did Ada live?"
    body = event_callback(mention_event(slack, channel, question, thread_ts=root["ts"]))
    first = socket_mode.event(body)
    retry = socket_mode.event(body, retry_attempt=1, retry_reason="timeout")  # same event_id, new envelope
    assert wait_ack(socket_mode, first).payload is None and wait_ack(socket_mode, retry).payload is None
    wait_answered(slack, worker, channel, question, root["ts"])
    time.sleep(1.0)  # a second job would have posted by now: its placeholder comes before any answer
    assert len([m for m in slack.messages_in(channel) if m.get("user") == BOT_USER_ID]) == 1
    assert len(slack.uploads(channel)) == 1


def test_disconnect_then_reconnect_and_a_further_answer(
        qa_bot: BotProcess, worker: WorkerProcess, slack: SlackFake, socket_mode: SocketModeFake) -> None:
    opened_before = len(slack.calls("apps.connections.open"))
    old = socket_mode.disconnect("refresh_requested")

    def reconnected() -> bool:
        qa_bot.check_alive()
        return old.closed and any(link.number > old.number and not link.closed for link in socket_mode.links())
    wait_until(reconnected, CONNECT_TIMEOUT_S, "a new connection, and the old one closed by the app", interval=0.1)
    assert len(slack.calls("apps.connections.open")) == opened_before + 1

    channel = unique("C")
    question = "When did she publish?"
    envelope_id = socket_mode.slash_command(command_payload(slack, f"{question} | {PASSAGE}", channel=channel))
    assert wait_ack(socket_mode, envelope_id).link == socket_mode.current().number
    wait_answered(slack, worker, channel, question, None)


def test_the_app_sent_only_acks_and_logged_no_token(qa_bot: BotProcess, socket_mode: SocketModeFake) -> None:
    assert socket_mode.other_messages() == []
    log = qa_bot.log()
    assert log.strip()  # the bot did log (to this file)
    assert BOT_TOKEN not in log and APP_TOKEN not in log


def test_a_wrong_app_token_is_one_clear_line(slack: SlackFake, socket_mode: SocketModeFake,
                                             module_redis: RedisServer) -> None:
    done = refused(slack, module_redis)
    assert done.returncode == 2, done.stderr
    mine = [line for line in done.stderr.splitlines() if line.startswith("qa-bot:")]
    assert len(mine) == 1, done.stderr
    assert "Slack rejected SLACK_APP_TOKEN (invalid_auth)" in mine[0]
    assert "SLACK_APP_TOKEN" in mine[0] and "Traceback" not in done.stderr and "xapp-wrong" not in done.stderr
    assert done.stderr.splitlines()[-1] == mine[0]  # the last thing a person reads


def test_a_wrong_app_token_prints_nothing_but_that_line(slack: SlackFake, socket_mode: SocketModeFake,
                                                         module_redis: RedisServer) -> None:
    done = refused(slack, module_redis)
    assert [line for line in done.stderr.splitlines() if " INFO " not in line] == [
        line for line in done.stderr.splitlines() if line.startswith("qa-bot:")]


def test_answer_buttons_through_socket_mode(qa_bot: BotProcess, worker: WorkerProcess, slack: SlackFake,
                                            socket_mode: SocketModeFake, module_redis: RedisServer,
                                            twin_model_dir: Path) -> None:
    channel = unique("C")
    question = "Who designed the engine?"
    socket_mode.slash_command(command_payload(slack, f"{question} | {PASSAGE}", channel=channel))
    reply = wait_answered(slack, worker, channel, question, None)
    buttons = [e for block in reply["blocks"] if block["type"] == "actions" for e in block["elements"]]
    assert blocks.ACTION_COMPARE in {e["action_id"] for e in buttons}  # two models to compare
    [answer_tag] = [e["value"] for e in buttons if e["action_id"] == blocks.ACTION_OTHER_ANSWERS]

    def clicked(action_id: str, value: str) -> None:
        """Click through Socket Mode; the ack (empty) must reach Slack within its 3 s."""
        started = time.monotonic()
        ack = wait_ack(socket_mode, socket_mode.interactive(
            block_action_payload(slack, channel, reply, action_id, value)))
        assert ack.payload is None and time.monotonic() - started < 3.0

    clicked(blocks.ACTION_FEEDBACK, f"{HELPFUL} {answer_tag}")
    [thanks] = slack.wait_for(lambda: slack.calls("chat.postEphemeral", channel=channel), 15, "the thanks")
    assert thanks.args["user"] == USER and "found this answer helpful" in thanks.args["text"]
    queue = JobQueue.connect(module_redis.url, namespace=NAMESPACE)
    try:
        [vote] = [v for v in Votes(queue.redis, queue.keys).all() if v.tag == answer_tag]
    finally:
        queue.redis.close()
    assert (vote.voter, vote.vote, vote.channel, vote.method) == (USER, HELPFUL, channel, "vanilla")

    clicked(blocks.ACTION_OTHER_ANSWERS, answer_tag)
    [others] = slack.wait_for(lambda: [m for m in slack.messages_in(channel)
                                       if m.get("thread_ts") == reply["ts"] and m.get("user") == BOT_USER_ID], 15,
                              "the other answers in the thread")
    assert others["text"] == f"Top answers to “{question}”"
    assert "%)" in json.dumps(others["blocks"], ensure_ascii=False)
    assert len(slack.calls("chat.postEphemeral", channel=channel)) == 1

    def in_thread(prefix: str) -> list[dict[str, Any]]:
        return [m for m in slack.messages_in(channel) if m.get("thread_ts") == reply["ts"]
                and m.get("user") == BOT_USER_ID and str(m.get("text") or "").startswith(prefix)]

    clicked(blocks.ACTION_ANOTHER_WAY, f"grad_x_input {answer_tag}")
    [again] = slack.wait_for(lambda: in_thread(ANSWER_PREFIXES), REPLY_TIMEOUT_S, "the answer explained another way")
    assert "gradient × input" in json.dumps(again["blocks"], ensure_ascii=False)
    clicked(blocks.ACTION_COMPARE, answer_tag)
    slack.wait_for(lambda: len(in_thread(ANSWER_PREFIXES)) == 2, REPLY_TIMEOUT_S, "the comparison in the thread")
    [compared] = [m for m in in_thread(ANSWER_PREFIXES) if m["ts"] != again["ts"]]
    assert twin_model_dir.name in json.dumps(compared["blocks"], ensure_ascii=False)  # both models answered
    slack.wait_for(lambda: len([u for u in slack.uploads(channel) if u.thread_ts == reply["ts"]]) == 4, 30,
                   "the pictures: the answer's, another way's and the two models'")
