"""The result consumer against real Redis and the Slack fake: each result becomes exactly one
reply in its placeholder, whatever Slack does (outages, rate limits, deleted messages,
closed channels) and whatever the consumer does (crashes, redeliveries).

A test acts as the worker with `answer_jobs` (the real protocol, no TensorFlow); the bot's
questions come in as signed requests through the harness.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from bot.outcome.delivery import Delivery
from bot.outcome.tracking import Outcome
from explain_core.present.summary import RejectedSpan
from explain_core.queue import RESULTS_GROUP, JobQueue, JobResult, ResultImage
from tests.support.bot_harness import BotUnderTest, module_redis, settings_for, slack, unique, wait_until
from tests.support.slack_fake import SlackFake
from tests.support.work import PNG, answer_jobs, summary

__all__ = ["module_redis", "slack"]

PASSAGE = "The Normans gave their name to Normandy, a region in France."


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, slack_retry_s=20.0))
    under_test.services.flow.replier.first_backoff_s = 0.1  # minutes of retries, in seconds
    yield under_test
    under_test.close()


def ask(bot: BotUnderTest, channel: str, question: str = "Who gave their name to Normandy?", *,
        user: str = "UASKER", compare: bool = False) -> str:
    """Ask through /explain; returns the placeholder's ts once the job is queued."""
    bot.command(f"{'--compare ' if compare else ''}{question} | {PASSAGE}", channel=channel, user=user)
    job = wait_until(lambda: [j for j in bot.jobs() if j.reply_to.channel == channel], what="the job")[0]
    assert job.reply_to.ts
    return job.reply_to.ts


def updates(fake: SlackFake, channel: str) -> list[dict]:
    return [c.args for c in fake.calls("chat.update", channel=channel) if c.status == 200]


def posts(fake: SlackFake, channel: str) -> list[dict]:
    return [c.args for c in fake.calls("chat.postMessage", channel=channel) if c.status == 200]


def acked(bot: BotUnderTest) -> bool:
    return bot.queue.redis.xlen(bot.queue.keys.results) == 0


def test_answer_replaces_the_placeholder_and_the_picture_goes_to_its_thread(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    placeholder_ts = ask(bot, channel)
    answer_jobs(bot.queue)
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the answer")
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), what="the picture")
    assert update["ts"] == placeholder_ts
    assert update["text"] == "Answer: The Normans (87%)"
    shown = json.dumps(update["blocks"], ensure_ascii=False)
    assert '{"type": "text", "text": "The Normans", "style": {"bold": true}}' in shown
    assert "tiny-bert · vanilla gradient · 123 ms · 1 window" in shown
    assert "The picture of the words the model relied on is in this message's thread." in shown
    assert (upload.data, upload.alt_txt, upload.thread_ts) == (PNG, "Heat map of the passage; Normans weighs most.",
                                                               placeholder_ts)
    wait_until(lambda: acked(bot), what="the result acked")
    assert len(posts(bot.fake, channel)) == 1  # the placeholder: the answer went into it
    assert bot.queue.redis.zcard(bot.queue.keys.replies) == 0  # no longer tracked


def test_crash_between_posting_and_acking_does_not_post_twice(bot: BotUnderTest) -> None:
    channel = unique("C")
    placeholder_ts = ask(bot, channel)
    answer_jobs(bot.queue)

    # Consumer A posts everything, then "crashes": it never acks.
    [entry] = wait_until(lambda: bot.queue.read_results(RESULTS_GROUP, "consumer-a", block_ms=100), what="result")
    Delivery(bot.services.flow, consumer="consumer-a").deliver(entry.result)
    assert len(bot.fake.uploads(channel)) == 1
    # ...and even before it could record the picture as posted, which Slack had taken.
    bot.queue.redis.delete(bot.queue.keys.once(f"uploaded:{entry.result.key}:0"))

    # Consumer B reclaims the unacked result from the dead consumer and finishes the job.
    impatient = JobQueue(bot.queue.redis, bot.settings.namespace, result_reclaim_s=0.1)
    survivor = Delivery(bot.services.flow, consumer="consumer-b")
    survivor._queue = impatient
    time.sleep(0.2)
    assert wait_until(lambda: survivor.run_once(block_ms=100), what="the reclaimed result") == 1
    wait_until(lambda: acked(bot), what="the result acked")
    assert len(bot.fake.uploads(channel)) == 1  # looked for in the thread before uploading again
    assert len(posts(bot.fake, channel)) == 1
    assert {u["ts"] for u in updates(bot.fake, channel)} == {placeholder_ts}  # same message, same content


def test_an_upload_that_times_out_after_slack_took_it_is_not_repeated(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.services.flow.replier.client.timeout = 1
    bot.start_delivery()
    ask(bot, channel)
    bot.fake.delay_next("files.completeUploadExternal", 1.5)  # done, but the answer comes too late
    answer_jobs(bot.queue)
    wait_until(lambda: acked(bot), what="the result acked")
    assert len(bot.fake.calls("files.completeUploadExternal", channel_id=channel)) == 1  # found, not repeated
    assert len(bot.fake.uploads(channel)) == 1


def test_a_one_minute_like_outage_of_chat_update_ends_with_each_answer_delivered_once(bot: BotUnderTest) -> None:
    """Measured before: a 5xx outage on chat.update lost 3/3 answers silently."""
    channels = [unique("C") for _ in range(3)]
    bot.start_delivery()
    placeholders = [ask(bot, channel, user=f"U{i}") for i, channel in enumerate(channels)]
    bot.fake.fail_for("chat.update", 503, 3.0)  # 3 s here stands for minutes: the retry window is 20 s
    started = time.monotonic()
    answer_jobs(bot.queue)
    for channel, ts in zip(channels, placeholders):
        [update] = bot.fake.wait_for(lambda c=channel: updates(bot.fake, c), timeout=20, what="the answer")
        assert update["ts"] == ts and update["text"].startswith("Answer:")
    wait_until(lambda: acked(bot), what="the results acked")
    assert time.monotonic() - started >= 3.0
    for channel in channels:
        assert len(bot.fake.uploads(channel)) == 1 and len(posts(bot.fake, channel)) == 1
        assert len(updates(bot.fake, channel)) == 1
    assert sum(c.status == 503 for c in bot.fake.calls("chat.update")) >= 3  # each one waited the outage out


def test_an_outage_longer_than_the_window_is_told_as_an_outage(slack: SlackFake, module_redis, namespace: str) -> None:
    """Every way into the channel fails for longer than the retry window: the asker hears it
    through the slash command's response_url, with the true reason (not "invite me")."""
    bot = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, slack_retry_s=0.5))
    bot.services.flow.replier.first_backoff_s = 0.1
    try:
        channel = unique("C")
        bot.start_delivery()
        reply = bot.command(f"Who? | {PASSAGE}", channel=channel)
        wait_until(bot.jobs, what="the job")
        for method in ("chat.update", "chat.postMessage", "chat.postEphemeral"):
            slack.fail_for(method, 503, 10.0, channel=channel)
        answer_jobs(bot.queue)
        told = bot.wait_response(reply)
        assert told["response_type"] == "ephemeral" and told["text"] == "Answer: The Normans (87%)"
        note = json.dumps(told["blocks"][-1], ensure_ascii=False)
        assert "Only you can see this: Slack kept failing (HTTP 503)" in note and "invite" not in note
        wait_until(lambda: acked(bot), what="the result acked")
        assert updates(slack, channel) == []
    finally:
        bot.close()


def test_a_deleted_placeholder_gets_the_answer_as_a_new_message(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    placeholder_ts = ask(bot, channel)
    bot.fake.delete_message(channel, placeholder_ts)
    answer_jobs(bot.queue)
    [_placeholder, reply] = bot.fake.wait_for(lambda: len(posts(bot.fake, channel)) == 2 and posts(bot.fake, channel),
                                              what="the answer as a new message")
    assert reply["text"] == "Answer: The Normans (87%)" and reply.get("thread_ts") is None
    assert "my “Explaining…” message was deleted" in json.dumps(reply["blocks"], ensure_ascii=False)
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), what="the picture")
    new_ts = [m["ts"] for m in bot.fake.messages_in(channel) if m.get("bot_id")][-1]
    assert upload.thread_ts == new_ts


def test_a_channel_closed_to_the_bot_answers_through_the_response_url(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    reply = bot.command(f"Who? | {PASSAGE}", channel=channel)
    wait_until(bot.jobs, what="the job")
    bot.fake.close_channel(channel, "is_archived")
    answer_jobs(bot.queue)
    told = bot.wait_response(reply)
    assert told["text"] == "Answer: The Normans (87%)"
    assert "Only you can see this: this channel is archived (Slack said: is_archived)." in json.dumps(
        told["blocks"], ensure_ascii=False)
    wait_until(lambda: acked(bot), what="the result acked")
    assert len(posts(bot.fake, channel)) == 1  # no second post tried into a closed channel


def test_a_picture_refused_in_a_public_channel_joins_it_once(bot: BotUnderTest) -> None:
    channel = unique("CPUB")  # the bot posts (chat:write.public) but may share files only once joined
    bot.start_delivery()
    ask(bot, channel)
    answer_jobs(bot.queue)
    [upload] = bot.fake.wait_for(lambda: bot.fake.uploads(channel), what="the picture")
    assert upload.data == PNG
    assert len(bot.fake.calls("conversations.join", channel=channel)) == 1


def test_a_picture_refused_in_a_private_channel_is_explained_to_the_asker(bot: BotUnderTest) -> None:
    channel = unique("CPRIV")
    bot.start_delivery()
    ask(bot, channel)
    answer_jobs(bot.queue)
    [told] = bot.fake.wait_for(lambda: bot.ephemerals(channel), what="the explanation")
    assert "I couldn't post the picture" in told["text"] and "/invite @explain" in told["text"]
    assert bot.fake.uploads(channel) == [] and len(updates(bot.fake, channel)) == 1  # the answer is there
    wait_until(lambda: acked(bot), what="the result acked")


def test_a_rate_limited_channel_does_not_delay_another_channels_answer(bot: BotUnderTest) -> None:
    """Measured before: one consumer thread made other askers wait 46-62 s behind a slow reply."""
    slow, fast = unique("C"), unique("C")
    bot.start_delivery()
    ask(bot, slow, user="USLOW")
    ask(bot, slow, "A second question?", user="USLOW2")
    bot.fake.fail_next("chat.update", 429, channel=slow, retry_after=3)
    answer_jobs(bot.queue)  # the slow channel's results are first in the stream
    ask(bot, fast, user="UFAST")
    answer_jobs(bot.queue)
    bot.fake.wait_for(lambda: len(updates(bot.fake, slow)) == 2, timeout=20, what="the slow channel's answers")
    done = [c.args["channel"] for c in bot.fake.calls("chat.update") if c.status == 200
            and c.args["channel"] in (slow, fast)]
    assert done[0] == fast  # answered while the slow channel waited out its Retry-After
    slow_updates = updates(bot.fake, slow)
    assert ["Who gave" in json.dumps(u["blocks"]) for u in slow_updates] == [True, False]  # in order


def test_a_failed_job_says_why_in_the_placeholder(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    ask(bot, channel)
    answer_jobs(bot.queue, lambda job: JobResult.failure("1-0", job.key, job.reply_to, "model_failed",
                                                         "the model failed on this input"))
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the failure")
    assert update["text"] == "I couldn't answer: the model failed on this input"
    assert bot.fake.uploads(channel) == []
    [key] = [k.removeprefix(bot.queue.keys.outcome("")) for k in bot.queue.redis.scan_iter(bot.queue.keys.outcome("*"))]
    assert bot.services.flow.outcomes.get_many([key]) == [Outcome.FAILED]  # the App Home says "not answered"


def test_comparison_shows_one_answer_and_picture_per_model(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.start_delivery()
    ask(bot, channel, compare=True)
    models = ("tiny-bert", "tiny-roberta")
    no_answer = summary("", "tiny-roberta", no_answer=True, confidence=0.6, sentence="", answer_end=0,
                        best_rejected=RejectedSpan("Normandy", 0.2))
    answer_jobs(bot.queue, lambda job: JobResult(
        key=job.key, reply_to=job.reply_to, ok=True, answers=[summary(), no_answer],
        images=[ResultImage(PNG, f"picture of {m}", m) for m in models]))
    [update] = bot.fake.wait_for(lambda: updates(bot.fake, channel), what="the answer")
    shown = json.dumps(update["blocks"], ensure_ascii=False)
    assert '"text": "tiny-bert", "style": {"bold": true}' in shown and '"divider"' in shown
    assert "No answer in this passage" in shown and "Closest candidate: “Normandy” (20%)" in shown
    uploads = bot.fake.wait_for(lambda: len(bot.fake.uploads(channel)) == 2 and bot.fake.uploads(channel))
    assert sorted(u.title for u in uploads) == ["Why this answer (tiny-bert)", "Why this answer (tiny-roberta)"]


def test_the_consumer_carries_on_through_redis_errors(bot: BotUnderTest) -> None:
    """Redis refusing writes (out of memory) stalls delivery; it never kills the consumer."""
    channel = unique("C")
    ask(bot, channel)
    answer_jobs(bot.queue)
    redis = bot.queue.redis
    used = int(redis.info("memory")["used_memory"])
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", str(used // 2))  # every write now answers OOM
    try:
        delivery = bot.start_delivery()
        time.sleep(1.0)
        assert updates(bot.fake, channel) == []  # the outcome claim could not be written: nothing shown
        assert delivery._thread is not None and delivery._thread.is_alive()
    finally:
        redis.config_set("maxmemory", "0")
    bot.fake.wait_for(lambda: updates(bot.fake, channel), timeout=40, what="the answer after Redis recovered")
    wait_until(lambda: acked(bot), what="the result acked")


def test_an_answer_whose_update_landed_but_timed_out_is_not_posted_again(bot: BotUnderTest) -> None:
    """Slack applied the update but answered after the client's timeout, for the whole retry window:
    the placeholder shows the answer already, so no second answer is posted (soak seed 3)."""
    flow = bot.services.flow
    flow.replier.client.timeout = 1
    flow.replier.window_s = 2.0
    channel = unique("C")
    bot.fake.answer_late("chat.update", 3.0, channel=channel, times=20)
    ask(bot, channel)
    answer_jobs(bot.queue)
    bot.start_delivery()
    wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, timeout=30, what="the result acked")
    time.sleep(3.5)  # the last late answers
    shown = [m["text"] for m in bot.fake.messages_in(channel) if m.get("user") == "UBOT"]
    assert len(shown) == 1 and shown[0].startswith("Answer: "), shown
