"""The result consumer's promises, made deterministic: exactly one reply per job.

Results are produced through the real queue protocol (`read_jobs` + `finish`, what the
worker calls) with hand-written answers, so a test can stop a consumer between posting and
acking, or deliver a result before its placeholder exists. The real worker answers in
tests/bot/test_e2e.py.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from bot.delivery import Delivery
from bot.intake import Ask, Placeholders
from explain_core.present.summary import AnswerSummary, RejectedSpan, TopWord
from explain_core.queue import RESULTS_GROUP, Finished, Job, JobOptions, JobQueue, JobResult, ReplyTo, ResultImage
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.slack_fake import TEAM_ID, SlackFake

__all__ = ["module_redis", "slack"]

PASSAGE = "The Normans gave their name to Normandy, a region in France."
PNG = b"\x89PNG\r\n\x1a\n" + b"picture bytes"


def summary(answer: str = "The Normans", model: str = "tiny-bert", **changes: object) -> AnswerSummary:
    values: dict = dict(answer=answer, confidence=0.87, no_answer=False,
                        sentence="The Normans gave their name to Normandy, a region in France.",
                        answer_start=0, answer_end=11,
                        top_words=[TopWord("Normans", 1.0, "passage"), TopWord("name", 0.5, "question")],
                        model=model, model_label=model, method="vanilla", method_label="vanilla gradient",
                        latency_ms=123.0, windows=1)
    values.update(changes)
    return AnswerSummary(**values)


def answer_jobs(queue: JobQueue, make: Callable[[Job], JobResult] | None = None) -> list[Job]:
    """Act as the worker for every queued job: answer it with `make(job)` (default: one answer)."""
    entries = queue.read_jobs("test-worker", count=50, block_ms=100)
    jobs = [Job.from_json(e.payload) for e in entries]
    finished = []
    for entry, job in zip(entries, jobs):
        result = make(job) if make else JobResult(
            key=job.key, reply_to=job.reply_to, ok=True, answers=[summary()],
            images=[ResultImage(PNG, "Heat map of the passage; Normans weighs most.", "tiny-bert")])
        finished.append(Finished(entry.entry_id, result))
    queue.finish(finished)
    return jobs


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, placeholder_wait_s=0.5))
    yield under_test
    under_test.close()


def placeholder_of(bot: BotUnderTest) -> str:
    """The ts of the placeholder of the (only) queued job, once the listener recorded it."""
    [job] = wait_until(bot.jobs, what="the job")
    return wait_until(lambda: bot.placeholders.get(job.key), what="the placeholder slot")


def updates(fake: SlackFake, channel: str) -> list[dict]:
    return [c.args for c in fake.calls("chat.update", channel=channel) if c.status == 200]


def posts(fake: SlackFake, channel: str) -> list[dict]:
    return [c.args for c in fake.calls("chat.postMessage", channel=channel) if c.status == 200]


def test_answer_replaces_the_placeholder_and_the_picture_goes_to_its_thread(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.command(f"Who gave their name to Normandy? | {PASSAGE}", channel=channel)
    [placeholder] = bot.fake.wait_for(lambda: posts(bot.fake, channel), what="the placeholder")
    placeholder_ts = placeholder_of(bot)
    answer_jobs(bot.queue)
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the answer")
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), what="the picture")
    assert update["ts"] == placeholder_ts
    assert update["text"] == "Answer: The Normans (87%)"
    shown = json.dumps(update["blocks"], ensure_ascii=False)
    assert ">*The Normans* gave their name to Normandy" in shown
    assert "tiny-bert · vanilla gradient · 123 ms · 1 window" in shown
    assert placeholder["text"] == "Explaining…"
    assert (upload.data, upload.alt_txt, upload.thread_ts) == (PNG, "Heat map of the passage; Normans weighs most.",
                                                               placeholder_ts)
    wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, what="the result acked")


def test_crash_between_posting_and_acking_does_not_post_twice(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    placeholder_ts = placeholder_of(bot)
    answer_jobs(bot.queue)

    # Consumer A posts everything, then "crashes": it never acks.
    [entry] = wait_until(lambda: bot.queue.read_results(RESULTS_GROUP, "consumer-a", block_ms=100), what="result")
    Delivery(bot.queue, bot.services.client, bot.settings, consumer="consumer-a").deliver(entry.result)
    assert len(bot.fake.uploads(channel)) == 1

    # Consumer B reclaims the unacked result from the dead consumer and finishes the job.
    impatient = JobQueue(bot.queue.redis, bot.settings.namespace, result_reclaim_s=0.1)
    survivor = Delivery(impatient, bot.services.client, bot.settings, consumer="consumer-b")
    time.sleep(0.2)
    assert wait_until(lambda: survivor.run_once(block_ms=100), what="the reclaimed result") == 1
    assert len(bot.fake.uploads(channel)) == 1
    assert len(posts(bot.fake, channel)) == 1  # the placeholder; the answer went into it
    assert {u["ts"] for u in updates(bot.fake, channel)} == {placeholder_ts}  # same message, same content
    assert bot.queue.redis.xlen(bot.queue.keys.results) == 0


def test_a_result_faster_than_its_placeholder_waits_for_it(bot: BotUnderTest) -> None:
    channel = unique("C")
    key = f"test:{unique('k')}"
    reply_to = ReplyTo(team=TEAM_ID, channel=channel, thread_ts=None, user="U1", question="Who?", asker="U1")
    bot.queue.enqueue(key, "Who?", PASSAGE, JobOptions(), reply_to)
    answer_jobs(bot.queue)
    delivery = Delivery(bot.queue, bot.services.client, bot.settings, consumer="waiting")
    assert delivery.run_once(block_ms=100) == 0  # no placeholder yet: nothing posted, nothing acked
    assert updates(bot.fake, channel) == [] and posts(bot.fake, channel) == []
    ts = bot.fake.next_ts()
    assert bot.placeholders.offer(key, ts) == ts  # the listener records its placeholder
    assert wait_until(lambda: delivery.run_once(block_ms=100), what="the delivery") == 1
    [update] = updates(bot.fake, channel)
    assert update["ts"] == ts
    assert [u.thread_ts for u in bot.fake.uploads(channel)] == [ts]


def test_a_placeholder_that_never_comes_gets_a_new_reply_and_a_late_one_is_deleted(bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.next_ts()
    key = f"test:{unique('k')}"
    slot = bot.placeholders
    assert slot.offer(key, Placeholders.GAVE_UP) == Placeholders.GAVE_UP  # the consumer gave up first

    bot.services.intake.submit(Ask(key=key, team=TEAM_ID, channel=channel, user="U1", question="Who?",
                                   passage=PASSAGE, thread_ts=root))
    [late] = posts(bot.fake, channel)
    [deleted] = bot.fake.wait_for(lambda: bot.fake.calls("chat.delete", channel=channel), what="chat.delete")
    assert deleted.args["ts"] != root

    answer_jobs(bot.queue)
    delivery = Delivery(bot.queue, bot.services.client, bot.settings, consumer="gave-up")
    assert wait_until(lambda: delivery.run_once(block_ms=100), what="the delivery") == 1
    fresh = posts(bot.fake, channel)[1:]
    assert len(fresh) == 1 and fresh[0]["thread_ts"] == root and fresh[0]["text"].startswith("Answer:")
    assert updates(bot.fake, channel) == []
    assert late["text"] == "Explaining…"


def test_rate_limited_and_failing_calls_are_retried_once(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.fake.fail_next("chat.postMessage", 429, channel=channel, retry_after=1)
    bot.fake.fail_next("chat.update", 500, channel=channel)
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    placeholder_of(bot)
    answer_jobs(bot.queue)
    bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the answer")
    attempts = bot.fake.calls("chat.postMessage", channel=channel)
    assert [c.status for c in attempts] == [429, 200]
    assert [c.status for c in bot.fake.calls("chat.update", channel=channel)] == [500, 200]
    wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, what="the result acked")
    assert len(bot.fake.uploads(channel)) == 1


def test_a_failed_job_says_why_in_the_placeholder(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    wait_until(bot.jobs, what="the job")
    answer_jobs(bot.queue, lambda job: JobResult.failure("1-0", job.key, job.reply_to, "model_failed",
                                                         "the model failed on this input"))
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the failure")
    assert update["text"] == "I couldn't answer: the model failed on this input"
    assert bot.fake.uploads(channel) == []


def test_comparison_shows_one_answer_and_picture_per_model(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    bot.command(f"--compare Who? | {PASSAGE}", channel=channel)
    wait_until(bot.jobs, what="the job")
    models = ("tiny-bert", "tiny-roberta")
    no_answer = summary("", "tiny-roberta", no_answer=True, confidence=0.6, sentence="", answer_end=0,
                        best_rejected=RejectedSpan("Normandy", 0.2))
    answer_jobs(bot.queue, lambda job: JobResult(
        key=job.key, reply_to=job.reply_to, ok=True, answers=[summary(), no_answer],
        images=[ResultImage(PNG, f"picture of {m}", m) for m in models]))
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the answer")
    shown = json.dumps(update["blocks"], ensure_ascii=False)
    assert "*tiny-bert*" in shown and "*tiny-roberta*" in shown and '"divider"' in shown
    assert "No answer in this passage" in shown and "Closest candidate: “Normandy” (20%)" in shown
    uploads = bot.fake.wait_for(lambda: len(bot.fake.uploads(channel)) == 2 and bot.fake.uploads(channel))
    assert sorted(u.title for u in uploads) == ["Why this answer (tiny-bert)", "Why this answer (tiny-roberta)"]
