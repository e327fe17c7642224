"""Live progress in the placeholder: throttled, newest first, never after the answer.

The bot (HTTP mode, its result consumer and progress reader running) talks to real Redis
and the Slack fake. The first tests publish progress the way the worker does and answer with
the worker's side of the protocol (tests/support/work.py), to control timing; the last runs a
real worker on a long document and checks what a person sees, from the recorded payloads.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.outcome.progress import EDIT_TIMEOUT_S
from explain_core.queue import Finished, Job, JobResult, Keys, Progress
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_USER_ID, TEAM_ID, SlackFake
from tests.support.work import answer_jobs, summary
from tests.support.worker_process import WorkerProcess

# xdist: the whole module runs in one test process, so the worker and the bot start once.
pytestmark = pytest.mark.xdist_group("bot.outcome.test_progress")

__all__ = ["module_redis", "slack"]

NAMESPACE = "progress"
PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended "
           "for a machine, the Analytical Engine designed by Charles Babbage. ")


@pytest.fixture(scope="module")
def bot(slack: SlackFake, module_redis: RedisServer) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, NAMESPACE, progress_after_s=0.0))
    under_test.start_delivery()
    under_test.start_progress()
    yield under_test
    under_test.close()


def ask(bot: BotUnderTest, channel: str) -> tuple[str, str]:
    """`/explain` a question; (its job key, its placeholder's ts) once it is queued."""
    bot.command(f"Who published it? | {PASSAGE}", channel=channel)
    [job] = wait_until(lambda: [j for j in bot.jobs() if j.reply_to.channel == channel], what="the job")
    assert job.reply_to.ts is not None
    return job.key, job.reply_to.ts


def updates(bot: BotUnderTest, channel: str) -> list[str]:
    return [c.args["text"] for c in bot.fake.calls("chat.update", channel=channel)]


def test_status_edits_are_throttled_show_the_newest_and_end_with_the_answer(bot: BotUnderTest) -> None:
    channel = unique("C")
    key, ts = ask(bot, channel)
    bot.queue.publish_progress([Progress(key, "running")])
    started = time.monotonic()
    for done in range(1, 31):  # 30 windows over 3 s: ten events a second
        bot.queue.publish_progress([Progress(key, "reading", done, 30)])
        time.sleep(0.1)
    time.sleep(1.2)  # the newest status is due within a second
    elapsed = time.monotonic() - started
    edits = bot.fake.calls("chat.update", channel=channel)
    assert 2 <= len(edits) <= int(elapsed) + 1, [e.args["text"] for e in edits]  # at most one a second
    last_status = edits[-1].args["blocks"][-1]["elements"][0]["text"]
    assert "Reading the document: 30 of 30 parts" in last_status  # the newest, not a stale one
    answer_jobs(bot.queue)
    wait_until(lambda: updates(bot, channel)[-1].startswith("Answer: "), what="the answer")
    time.sleep(1.5)  # a status edit would be due by now
    texts = updates(bot, channel)
    assert texts[-1].startswith("Answer: ") and sum(t.startswith("Answer: ") for t in texts) == 1
    [message] = [m for m in bot.fake.messages_in(channel) if m["ts"] == ts]
    assert message["text"].startswith("Answer: ")


def statuses(bot: BotUnderTest, channel: str) -> list[str]:
    """The status lines of the placeholder's edits in `channel`, in order."""
    return [c.args["blocks"][-1]["elements"][0]["text"] for c in bot.fake.calls("chat.update", channel=channel)
            if c.args["text"].startswith("Explaining")]


def test_a_waiting_question_shows_its_place_in_line_as_the_queue_moves(bot: BotUnderTest) -> None:
    first, second = unique("C"), unique("C")
    first_key, _ = ask(bot, first)
    bot.command(f"Who designed the engine? | {PASSAGE}", channel=second, user="USECOND")
    wait_until(lambda: any("Queued: 1 question ahead of yours" in t for t in statuses(bot, second)),
               what="the second question's place in line")
    [entry] = bot.queue.read_jobs("test-worker", count=1, block_ms=100)  # the first is taken ...
    assert Job.from_json(entry.payload).key == first_key
    bot.queue.finish([Finished(entry.entry_id, JobResult(key=first_key, reply_to=Job.from_json(
        entry.payload).reply_to, ok=True, answers=[summary()]))])  # ... and answered
    wait_until(lambda: any("Queued: yours is next" in t for t in statuses(bot, second)), what="next in line")
    answer_jobs(bot.queue)
    wait_until(lambda: updates(bot, second)[-1].startswith("Answer: "), what="the second answer")
    assert updates(bot, first)[-1].startswith("Answer: ")


def test_a_status_edit_in_flight_lands_before_the_answer_never_after(bot: BotUnderTest) -> None:
    channel = unique("C")
    key, ts = ask(bot, channel)
    bot.fake.delay_next("chat.update", 2.0, channel=channel)  # the status edit is slow ...
    bot.queue.publish_progress([Progress(key, "running")])
    wait_until(lambda: bot.queue.redis.exists(bot.queue.keys.edit(key)), what="a status edit in flight")
    answer_jobs(bot.queue)  # ... and the answer comes meanwhile
    wait_until(lambda: len(updates(bot, channel)) == 2, timeout=20, what="the status edit and the answer")
    assert updates(bot, channel)[-1].startswith("Answer: ")
    [message] = [m for m in bot.fake.messages_in(channel) if m["ts"] == ts]
    assert message["text"].startswith("Answer: "), "the slow status edit overwrote the answer"


def test_a_refused_status_edit_is_not_retried_in_a_storm(bot: BotUnderTest) -> None:
    channel = unique("C")
    key, _ts = ask(bot, channel)
    bot.fake.fail_for("chat.update", 500, 3.0, channel=channel)  # Slack refuses every edit for 3 s
    started = time.monotonic()
    for done in range(1, 16):
        bot.queue.publish_progress([Progress(key, "reading", done, 15)])
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert len(bot.fake.calls("chat.update", channel=channel)) <= int(elapsed) + 1  # one try a second at most
    answer_jobs(bot.queue)
    wait_until(lambda: updates(bot, channel)[-1].startswith("Answer: "), what="the answer")


def test_an_unclear_status_edit_keeps_the_answer_waiting_until_its_lock_expires(
        bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A status edit that timed out may still be applied by Slack afterwards: the answer must
    wait for its lock to expire rather than be overwritten by it."""
    monkeypatch.setattr(Keys, "EDIT_LOCK_MS", 8000)
    channel = unique("C")
    key, ts = ask(bot, channel)
    bot.fake.delay_next("chat.update", EDIT_TIMEOUT_S + 1.5, channel=channel)  # applied after the bot gave up
    bot.queue.publish_progress([Progress(key, "running")])
    wait_until(lambda: bot.queue.redis.exists(bot.queue.keys.edit(key)), what="a status edit in flight")
    answer_jobs(bot.queue)
    # The fake records a call once it has applied it: wait for both, the late status edit and the answer.
    wait_until(lambda: len(updates(bot, channel)) == 2, timeout=30, what="the status edit and the answer")
    assert updates(bot, channel)[-1].startswith("Answer: ")
    [message] = [m for m in bot.fake.messages_in(channel) if m["ts"] == ts]
    assert message["text"].startswith("Answer: "), "the late status edit overwrote the answer"


def test_an_answer_within_the_grace_gets_no_status_edit(slack: SlackFake, module_redis: RedisServer) -> None:
    quiet = BotUnderTest(slack, settings_for(slack, module_redis.url, f"{NAMESPACE}-quiet", progress_after_s=30.0))
    quiet.start_delivery()
    quiet.start_progress()
    try:
        channel = unique("C")
        key, _ts = ask(quiet, channel)
        quiet.queue.publish_progress([Progress(key, "running")])
        time.sleep(1.0)
        answer_jobs(quiet.queue)
        wait_until(lambda: updates(quiet, channel), what="the answer")
        time.sleep(1.0)
        assert [t[:7] for t in updates(quiet, channel)] == ["Answer:"]
    finally:
        quiet.close()


def test_progress_from_a_real_worker_on_a_long_document_in_a_thread(
        bot: BotUnderTest, module_redis: RedisServer, tiny_model_dir: Path, tmp_path: Path) -> None:
    worker = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, tmp_path, QA_MEMORY_BUDGET="1",
                                QA_WORKER_TEST_PAUSE_S="1.0").running()
    try:
        channel = unique("C")
        root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE * 40})
        mention = bot.mention(channel, "Who published the first algorithm?", thread_ts=root["ts"])
        key = f"event:{TEAM_ID}:{channel}:{mention['ts']}"
        [placeholder] = bot.fake.wait_for(
            lambda: [m for m in bot.fake.messages_in(channel) if m.get("user") == BOT_USER_ID], what="placeholder")
        wait_until(lambda: any(t.startswith(("Answer: ", "No answer")) for t in updates(bot, channel)), timeout=120,
                   what="the answer")
        time.sleep(1.5)
        texts = updates(bot, channel)
        assert texts[-1].startswith(("Answer: ", "No answer")), texts  # the answer is the last word
        statuses = [c.args["blocks"][-1]["elements"][0]["text"] for c in bot.fake.calls("chat.update", channel=channel)
                    if c.args["text"].startswith("Explaining")]
        assert statuses and all(("Working on it" in s) or ("Reading the document" in s) for s in statuses), statuses
        # What the worker published for this question: running, then every window of the long document.
        _position, events = bot.queue.read_progress("0-0", 0, count=10_000)
        mine = [e for e in events if e.key == key]
        assert mine[0].stage == "running"
        reading = [e for e in mine if e.stage == "reading"]
        assert reading[-1].total > 5 and [e.done for e in reading] == sorted(e.done for e in reading), mine
        assert reading[-1].done == reading[-1].total
        # Slack's assistant status under the thread: set while working, cleared with the answer.
        status_calls = [c.args["status"] for c in bot.fake.calls("assistant.threads.setStatus", channel_id=channel)]
        assert status_calls[0] == "is explaining…" and status_calls[-1] == ""
        [answer] = [m for m in bot.fake.messages_in(channel) if m["ts"] == placeholder["ts"]]
        assert answer["text"].startswith(("Answer: ", "No answer"))
    finally:
        worker.stop()
