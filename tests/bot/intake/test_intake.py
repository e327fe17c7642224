"""The bot's front half, end to end over HTTP: signed requests in, jobs in real Redis and
calls to the Slack fake out. No worker here: these tests look at what was queued (or that
nothing was), what the user was told, and that Slack always got its ack.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import redis
from redis.exceptions import OutOfMemoryError  # type: ignore[attr-defined]  # missing from types-redis

from bot.intake.submit import REPLAYED
from tests.support.bot_harness import (
    SIGNING_SECRET,
    USER,
    BotUnderTest,
    command_payload,
    module_redis,
    settings_for,
    slack,
    unique,
    view_submission_payload,
    wait_until,
)
from tests.support.pdfs import make_pdf
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_USER_ID, TEAM_ID, SlackFake

__all__ = ["module_redis", "slack"]  # fixtures used by name

PASSAGE = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."


@pytest.fixture()
def bot(slack: SlackFake, module_redis, namespace: str) -> Iterator[BotUnderTest]:
    """A bot with its own namespace, so `jobs()` and `depth()` see only this test's jobs."""
    under_test = BotUnderTest(slack, settings_for(slack, module_redis.url, namespace, max_file_bytes=64 * 1024))
    yield under_test
    under_test.close()


def placeholders(fake: SlackFake, channel: str) -> list[dict]:
    return [c.args for c in fake.calls("chat.postMessage", channel=channel) if c.status == 200]


def all_text(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False)


# -- signatures --------------------------------------------------------------------------
def test_forged_signature_is_refused(bot: BotUnderTest) -> None:
    channel = unique("C")
    reply = bot.command(f"What? | {PASSAGE}", channel=channel, secret="not-the-secret")
    assert reply.status == 401
    time.sleep(0.3)
    assert bot.jobs() == [] and placeholders(bot.fake, channel) == []


def test_stale_signature_is_refused(bot: BotUnderTest) -> None:
    channel = unique("C")
    reply = bot.command(f"What? | {PASSAGE}", channel=channel, secret=SIGNING_SECRET,
                        timestamp=int(time.time()) - 10 * 60)
    assert reply.status == 401
    time.sleep(0.3)
    assert bot.jobs() == []


# -- the slash command ---------------------------------------------------------------------
def test_slash_command_queues_a_job_and_posts_a_placeholder(bot: BotUnderTest) -> None:
    channel = unique("C")
    reply = bot.command(f"Who gave their name to Normandy? | {PASSAGE}", channel=channel)
    assert reply.status == 200 and reply.body == ""
    posted = bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")
    [job] = wait_until(bot.jobs, what="the job")
    assert job.question == "Who gave their name to Normandy?"
    assert bot.job_passage(job) == PASSAGE
    assert job.reply_to.channel == channel and job.reply_to.thread_ts is None
    assert job.key.startswith(f"command:{TEAM_ID}:")
    # The notification names the question; the placeholder was posted first, and its ts is the
    # job's reply address, so the answer always edits it.
    assert posted[0]["text"] == "Explaining “Who gave their name to Normandy?”…"
    assert posted[0].get("thread_ts") is None
    [stored] = [m for m in bot.fake.messages_in(channel) if m.get("bot_id")]
    assert job.reply_to.ts == stored["ts"]
    assert job.reply_to.response_url.startswith(f"{bot.fake.url}/response/")

    second = unique("C")
    bot.command(f"Who? | {PASSAGE}", channel=second, user="USECOND")
    posted = bot.fake.wait_for(lambda: placeholders(bot.fake, second), what="the second placeholder")
    assert posted[0]["text"] == "Explaining “Who?”… (1 question in the queue)"


def test_compare_option(bot: BotUnderTest) -> None:
    bot.command(f"--compare Who? | {PASSAGE}", channel=unique("C"))
    [job] = wait_until(bot.jobs, what="the job")
    assert job.options.compare is True


def test_help_is_answered_in_the_ack(bot: BotUnderTest) -> None:
    reply = bot.command("help", channel=unique("C"))
    assert reply.status == 200
    body = reply.json()
    assert "/explain What is X? | the passage" in body["blocks"][0]["text"]["text"]
    assert bot.jobs() == []


def test_empty_command_opens_the_form_and_its_submission_queues_the_job(bot: BotUnderTest) -> None:
    channel = unique("C")
    trigger = unique("trig.")
    reply = bot.command("", channel=channel, trigger_id=trigger)
    assert reply.status == 200 and reply.body == ""
    view_id, view = bot.opened_view(trigger)
    assert [b["block_id"] for b in view["blocks"]] == ["question", "passage"]

    refused = bot.view_submission(view_id, view, {"question": "Who?", "passage": "   "})
    assert refused.json() == {"response_action": "errors",
                              "errors": {"passage": "The passage has no text: give me the text to find the answer in."}}
    assert bot.jobs() == []

    accepted = bot.view_submission(view_id, view, {"question": "Who?", "passage": PASSAGE})
    assert accepted.status == 200 and accepted.body == ""
    [job] = wait_until(bot.jobs, what="the job")
    assert (job.question, bot.job_passage(job), job.reply_to.channel) == ("Who?", PASSAGE, channel)
    bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")


# -- replays: the same signed request again, within the 5 minutes its signature is good for ----------
FORM = "application/x-www-form-urlencoded"


def handled(bot: BotUnderTest, caplog: pytest.LogCaptureFixture, copies: int) -> None:
    """Wait until each of `copies` copies of a request reached the intake (its listener runs after
    the ack), then until Slack has heard nothing new for a second (what they post, if anything)."""
    wait_until(lambda: sum(r.getMessage().startswith("received ") or "(a replay)" in r.getMessage()
                           for r in caplog.records) >= copies, what=f"{copies} copies handled")
    seen = -1
    while seen != len(bot.fake.calls()):
        seen = len(bot.fake.calls())
        time.sleep(1.0)


def test_a_replayed_command_posts_one_question_and_tells_its_asker_once(
        bot: BotUnderTest, caplog: pytest.LogCaptureFixture) -> None:
    """Measured before: 10 copies of one signed /explain gave one answer and 9 public "You asked this already"."""
    caplog.set_level(logging.INFO, logger="bot.intake.submit")
    channel = unique("C")
    body, stamp = urlencode(command_payload(bot.fake, f"Who? | {PASSAGE}", channel=channel)), int(time.time())
    assert [bot.post(body, FORM, timestamp=stamp).status for _ in range(10)] == [200] * 10
    handled(bot, caplog, 10)
    assert len(placeholders(bot.fake, channel)) == 1 and len(bot.jobs()) == 1
    assert bot.fake.calls("chat.update", channel=channel) == []  # no placeholder turned into "asked already"
    assert [e["text"] for e in bot.ephemerals(channel)] == [REPLAYED]
    assert bot.fake.responses(body.split("response%2F")[1].split("&")[0]) == []  # nor through its response_url


def test_a_replayed_form_submission_posts_one_question(bot: BotUnderTest, caplog: pytest.LogCaptureFixture) -> None:
    """Measured before: 5 copies of one submission posted 5 messages in the channel."""
    caplog.set_level(logging.INFO, logger="bot.intake.submit")
    channel, trigger = unique("C"), unique("trig.")
    bot.command("", channel=channel, trigger_id=trigger)
    view_id, view = bot.opened_view(trigger)
    body = urlencode({"payload": json.dumps(view_submission_payload(view_id, view, {"question": "Who?",
                                                                                    "passage": PASSAGE}))})
    stamp = int(time.time())
    assert [bot.post(body, FORM, timestamp=stamp).status for _ in range(5)] == [200] * 5
    handled(bot, caplog, 5)
    assert len(placeholders(bot.fake, channel)) == 1 and len(bot.jobs()) == 1
    assert bot.fake.calls("chat.update", channel=channel) == []
    assert [e["text"] for e in bot.ephemerals(channel)] == [REPLAYED]


def test_question_without_passage_opens_the_form_with_the_question(bot: BotUnderTest) -> None:
    trigger = unique("trig.")
    bot.command("Who won?", channel=unique("C"), trigger_id=trigger)
    _view_id, view = bot.opened_view(trigger)
    assert view["blocks"][0]["element"]["initial_value"] == "Who won?"


# -- bad input: an ephemeral message that says what to do, and no job ----------------------
def test_no_question_in_the_command(bot: BotUnderTest) -> None:
    reply = bot.command(f"| {PASSAGE}", channel=unique("C"))
    assert "write a question" in reply.json()["text"]
    assert "/explain question | passage" in reply.json()["text"]
    time.sleep(0.3)
    assert bot.jobs() == []


def test_passage_too_long(bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_MAX_PASSAGE_CHARS", "50")
    reply = bot.command(f"Who? | {PASSAGE}", channel=unique("C"))
    assert "the limit is 50" in reply.json()["text"]
    time.sleep(0.3)
    assert bot.jobs() == []


def test_unknown_option(bot: BotUnderTest) -> None:
    reply = bot.command(f"--fast Who? | {PASSAGE}", channel=unique("C"))
    assert "--compare" in reply.json()["text"]
    assert bot.jobs() == []


def test_redis_unavailable_is_told_and_the_ack_is_immediate(slack: SlackFake, namespace: str) -> None:
    down = BotUnderTest(slack, settings_for(slack, "redis://127.0.0.1:1/0", namespace))
    try:
        reply = down.command(f"Who? | {PASSAGE}", channel=unique("C"))
        assert reply.status == 200 and reply.body == ""
        told = down.wait_response(reply)
        assert told["response_type"] == "ephemeral"
        assert "can't reach my job queue" in told["text"]
        dm = unique("D")
        down.direct_message(dm, f"Who? | {PASSAGE}")
        assert "can't reach my job queue" in down.wait_ephemeral(dm)["text"]
        channel = unique("C")
        root = slack.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
        down.mention(channel, "Who?", thread_ts=root["ts"])
        assert "can't reach my job queue" in down.wait_ephemeral(channel)["text"]
        assert slack.calls("chat.postMessage", channel=channel) == []
    finally:
        down.close()


def refusing_writes(server: RedisServer) -> None:
    """Fill `server` up to its tiny maxmemory, until it refuses writes as Redis does (OOM under noeviction),
    then lower the limit below what it holds: right at the limit, the memory Redis frees by itself
    (a client's buffers) would let small writes through again."""
    client = redis.Redis(port=server.port)
    with pytest.raises(redis.ResponseError, match="used memory > 'maxmemory'"):
        for i in range(100_000):
            client.set(f"filler:{i}", "x" * 10_000)
    client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)


@pytest.mark.parametrize("refusal", ["full", "read-only"])
def test_redis_refusing_writes_is_told_as_it_is(slack: SlackFake, namespace: str, refusal: str) -> None:
    """Measured before: a full Redis and a read-only replica both read "I can't reach my job queue"."""
    primary = RedisServer(appendonly=False, options=("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")).start()
    replica = RedisServer(appendonly=False, replica_of=primary.port).start() if refusal == "read-only" else None
    if replica is None:
        refusing_writes(primary)
    bot = BotUnderTest(slack, settings_for(slack, (replica or primary).url, namespace))
    try:
        reply = bot.command(f"Who? | {PASSAGE}", channel=(channel := unique("C")))
        assert reply.status == 200 and reply.body == ""
        told = bot.wait_response(reply)["text"]
        assert told.startswith({"full": "My job queue is full and refuses new questions right now, so I couldn't "
                                        "take your question. Try again in a few minutes",
                                "read-only": "My job queue is read-only right now"}[refusal]), told
        dm = unique("D")
        bot.direct_message(dm, f"Who? | {PASSAGE}")
        assert "can't reach" not in bot.wait_ephemeral(dm)["text"]
        assert slack.calls("chat.postMessage", channel=channel) == []  # said privately, nothing in the channel
    finally:
        bot.close()
        for server in (replica, primary):
            if server is not None:
                server.close()


def test_a_full_queue_is_told_in_the_placeholder(bot: BotUnderTest) -> None:
    bot.queue.max_backlog = 0  # every question finds the queue at its cap
    channel = unique("C")
    bot.command(f"Who? | {PASSAGE}", channel=channel)
    [update] = bot.fake.wait_for(lambda: [c.args for c in bot.fake.calls("chat.update", channel=channel)],
                                 what="the refusal")
    [placeholder] = placeholders(bot.fake, channel)
    assert update["ts"] == bot.fake.messages_in(channel)[0]["ts"]
    assert update["text"].startswith("The service is busy (0 questions waiting)")
    assert placeholder["text"].startswith("Explaining")
    assert bot.jobs() == []


def test_a_flood_is_refused_before_anything_is_posted(bot: BotUnderTest) -> None:
    bot.queue.max_per_user = 1
    channel = unique("C")
    first = bot.command(f"Who? | {PASSAGE}", channel=channel)
    wait_until(bot.jobs, what="the first job")
    second = bot.command(f"When? | {PASSAGE}", channel=channel)
    told = bot.wait_response(second)
    assert told["response_type"] == "ephemeral" and "you have 1 question waiting" in told["text"]
    assert len(placeholders(bot.fake, channel)) == 1 and len(bot.jobs()) == 1
    assert bot.fake.responses(first.response_id) == []


def test_echoed_text_never_pings(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.command(f"Hey <!channel> <!here|here> <@U123|bob> @everyone & 1 < 2? | {PASSAGE}", channel=channel)
    posted = bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")[0]
    shown = all_text({"text": posted["text"], "blocks": posted["blocks"]})
    for ping in ("<!channel>", "<!here", "<@U123", "@everyone", "@here", "@channel"):
        assert ping not in shown
    assert "&amp; 1 &lt; 2?" in posted["text"]  # the notification is mrkdwn: escaped
    assert "& 1 < 2?" in shown  # the blocks are rich text: shown as typed
    assert {"type": "user", "user_id": USER} in posted["blocks"][0]["elements"][0]["elements"]  # the asker


def test_formatting_characters_show_as_typed(bot: BotUnderTest) -> None:
    channel = unique("C")
    question = "Is *this* _the_ ~one~ `x`?"
    bot.command(f"{question} | {PASSAGE}", channel=channel)
    posted = bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")[0]
    [rich] = [b for b in posted["blocks"] if b["type"] == "rich_text"]
    texts = [e for e in rich["elements"][0]["elements"] if e["type"] == "text"]
    assert texts[-1] == {"type": "text", "text": question}  # a literal element, no style, no markup


# -- threads with documents ----------------------------------------------------------------
def test_thread_mention_about_a_pasted_document_reads_it_once(bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "Notes &amp; facts: " + PASSAGE})
    bot.mention(channel, "Who gave their name to Normandy?", thread_ts=root["ts"])
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == "Notes & facts: " + PASSAGE
    assert job.question == "Who gave their name to Normandy?"
    assert job.reply_to.thread_ts == root["ts"]
    placeholder = bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")[0]
    assert placeholder["thread_ts"] == root["ts"]

    bot.mention(channel, "When?", thread_ts=root["ts"], user="USECOND")  # one asker: one job in the stream
    wait_until(lambda: len(bot.jobs()) == 2, what="the second job")
    assert len(bot.fake.calls("conversations.replies", channel=channel)) == 1  # cached in Redis


def test_thread_mention_about_txt_and_pdf_files(bot: BotUnderTest) -> None:
    channel = unique("C")
    txt = bot.fake.add_file("notes.txt", b"The capital of Normandy is Rouen.")
    pdf = bot.fake.add_file("report.pdf", make_pdf(["The river is the Seine.", "It flows to Le Havre."]),
                            mimetype="application/pdf")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [txt, pdf]})
    bot.mention(channel, "Where does the river flow?", thread_ts=root["ts"])
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == "The capital of Normandy is Rouen.\n\nThe river is the Seine.\nIt flows to Le Havre."


def test_mention_with_no_question_gets_help(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.mention(channel, "")
    told = bot.wait_ephemeral(channel)
    assert "/explain What is X? | the passage" in told["blocks"][0]["text"]["text"]
    assert bot.jobs() == []


def test_top_level_mention_without_a_document_says_how(bot: BotUnderTest) -> None:
    channel = unique("C")
    bot.mention(channel, "Who won?")
    assert "in the thread of a document" in bot.wait_ephemeral(channel)["text"]
    assert bot.jobs() == []


@pytest.mark.parametrize("name, data, size, expected", [
    ("photo.png", b"\x89PNG....", None, "I can't read photo.png"),
    ("huge.txt", b"x", 10 * 1024 * 1024, "huge.txt is 10.0 MB; I read files up to 0.1 MB"),
    ("scan.pdf", None, None, "scan.pdf has no text layer"),
])
def test_bad_files_are_explained_and_queue_nothing(bot: BotUnderTest, name: str, data: bytes | None,
                                                   size: int | None, expected: str) -> None:
    channel = unique("C")
    file = bot.fake.add_file(name, data if data is not None else make_pdf([""]), size=size)
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [file]})
    bot.mention(channel, "What does it say?", thread_ts=root["ts"])
    told = bot.wait_ephemeral(channel)
    assert expected in told["text"], told["text"]
    assert told["user"] == USER and told["thread_ts"] == root["ts"]
    assert bot.jobs() == []
    if size is not None:
        assert file["id"] not in bot.fake.downloads  # the size cap is checked before downloading


def test_root_without_text_or_files_is_no_passage(bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "   "})
    bot.mention(channel, "What?", thread_ts=root["ts"])
    assert "no text and no file I can read" in bot.wait_ephemeral(channel)["text"]
    assert bot.jobs() == []


def test_retried_event_makes_one_job(bot: BotUnderTest) -> None:
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    event = bot.mention(channel, "Who?", thread_ts=root["ts"])
    wait_until(bot.jobs, what="the job")
    for attempt in (1, 2):
        reply = bot.event(event, retry_num=attempt)
        assert reply.status == 200
    time.sleep(0.5)
    assert len(bot.jobs()) == 1
    assert len(placeholders(bot.fake, channel)) == 1


# -- direct messages -----------------------------------------------------------------------
def test_direct_message_with_question_and_passage(bot: BotUnderTest) -> None:
    channel = unique("D")
    event = bot.direct_message(channel, f"Who gave their name to Normandy? | {PASSAGE}")
    [job] = wait_until(bot.jobs, what="the job")
    assert (job.question, bot.job_passage(job)) == ("Who gave their name to Normandy?", PASSAGE)
    assert job.reply_to.thread_ts == event["ts"]


def test_direct_message_thread_about_a_document(bot: BotUnderTest) -> None:
    channel = unique("D")
    doc = bot.fake.add_file("notes.md", b"# Notes\nRouen is the capital of Normandy.")
    root = bot.direct_message(channel, "", files=[doc])
    assert "I've read notes.md" in bot.wait_ephemeral(channel)["text"]  # read at once
    bot.direct_message(channel, "What is the capital?", thread_ts=root["ts"])
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == "# Notes\nRouen is the capital of Normandy."
    assert bot.fake.downloads.count(doc["id"]) == 1


def test_direct_message_without_passage(bot: BotUnderTest) -> None:
    channel = unique("D")
    bot.direct_message(channel, "Who won? |")
    assert "give me the text" in bot.wait_ephemeral(channel)["text"]
    assert bot.jobs() == []


def test_bot_messages_and_edits_in_dms_are_ignored(bot: BotUnderTest) -> None:
    channel = unique("D")
    for extra in ({"subtype": "message_changed"}, {"bot_id": "BOTHER"}):
        event = {"type": "message", "channel": channel, "channel_type": "im", "user": USER,
                 "text": f"Who? | {PASSAGE}", "ts": bot.fake.next_ts(), **extra}
        assert bot.event(event).status == 200
    time.sleep(0.5)
    assert bot.jobs() == [] and bot.ephemerals(channel) == []


# -- the message shortcut ------------------------------------------------------------------
def test_message_shortcut_asks_about_the_message_and_its_files(bot: BotUnderTest) -> None:
    channel = unique("C")
    txt = bot.fake.add_file("more.txt", b"Rouen is on the Seine.")
    message = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE, "files": [txt]})
    reply = bot.message_shortcut(channel, message)
    assert reply.status == 200
    _view_id, view = bot.opened_view(reply.trigger_id)
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == ["question"]
    assert "more.txt" in all_text(view["blocks"][0])

    missing = bot.view_submission(unique("V"), view, {"question": " "})
    assert missing.json()["response_action"] == "errors"
    accepted = bot.view_submission(unique("V"), view, {"question": "Which river?"})
    assert accepted.status == 200
    [job] = wait_until(bot.jobs, what="the job")
    assert bot.job_passage(job) == PASSAGE + "\n\nRouen is on the Seine."
    assert job.reply_to.thread_ts == message["ts"]


# -- no placeholder, no job ---------------------------------------------------------------
def test_a_conversation_closed_to_the_bot_is_told_through_response_url_and_queues_nothing(
        bot: BotUnderTest) -> None:
    channel = unique("CNOTIN")  # the fake answers not_in_channel here
    reply = bot.command(f"Who? | {PASSAGE}", channel=channel)
    told = bot.wait_response(reply)
    assert "not_in_channel" in told["text"] and "/invite" in told["text"]
    assert bot.jobs() == []
    assert bot.queue.redis.zcard(bot.queue.keys.replies) == 0


def test_the_message_shortcut_tells_through_its_response_url(bot: BotUnderTest) -> None:
    """Neither a post nor an ephemeral works where the bot is not a member: the shortcut's
    response_url, carried through the form, is the way left to the asker."""
    channel = unique("CNOTIN")
    message = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    payload_reply = bot.message_shortcut(channel, message)
    _view_id, view = bot.opened_view(payload_reply.trigger_id)
    response_id = json.loads(view["private_metadata"])["response_url"].rsplit("/", 1)[1]
    bot.view_submission(unique("V"), view, {"question": "Which river?"})
    told = bot.fake.wait_for(lambda: bot.fake.responses(response_id), what="the response_url post")[0]
    assert told["response_type"] == "ephemeral" and "not_in_channel" in told["text"]
    assert [c.status for c in bot.fake.calls("chat.postEphemeral", channel=channel)] == [200]  # it said no
    assert bot.jobs() == []


def test_ack_does_not_wait_for_slow_work(bot: BotUnderTest) -> None:
    """The ack part runs before the response; a slow download happens after it."""
    channel = unique("C")
    bot.fake.set_download_delay(2.0)
    try:
        file = bot.fake.add_file("slow.txt", b"Slow but sure.")
        root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [file]})
        message = bot.fake.add_message(channel, {"user": USER, "text": f"<@{BOT_USER_ID}> What?",
                                                 "thread_ts": root["ts"]})
        reply = bot.event({"type": "app_mention", "channel": channel, "user": USER, "text": message["text"],
                           "ts": message["ts"], "thread_ts": root["ts"]})
        assert reply.status == 200
        assert bot.jobs() == []  # answered before the work was done
        wait_until(bot.jobs, what="the job after the slow download")
    finally:
        bot.fake.set_download_delay(0.0)


def test_a_second_delivery_of_an_event_past_the_first_delivery_check_posts_nothing(
        bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack re-delivered a mention while Redis could not say it was taken (the check lets it
    through then): the placeholder of the first delivery is recorded, so the second posts nothing,
    neither a placeholder nor "You asked this already" (soak seed 3)."""
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    event = bot.mention(channel, "Who gave their name to Normandy?", thread_ts=root["ts"])
    bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")
    monkeypatch.setattr(bot.services.intake, "first_delivery", lambda key, token: True)
    assert bot.event(event, retry_num=1).status == 200
    time.sleep(1.5)
    assert len(placeholders(bot.fake, channel)) == 1
    assert bot.fake.calls("chat.postEphemeral", channel=channel) == []


def test_a_mention_is_journalled_while_its_file_is_read(bot: BotUnderTest) -> None:
    """A process killed while reading a question's file must not lose it in silence: the question
    is in the intake journal from the first delivery on (the sweeper tells its asker if the process
    dies; tests/bot/outcome/test_sweeper.py), and out of it once its placeholder is recorded."""
    channel = unique("C")
    file = bot.fake.add_file("notes.txt", PASSAGE.encode(), mimetype="text/plain")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": "", "files": [file]})
    bot.fake.set_download_delay(1.5)
    try:
        bot.mention(channel, "Who gave their name to Normandy?", thread_ts=root["ts"])
        wait_until(lambda: bot.queue.redis.zcard(bot.queue.keys.intakes) == 1, what="the journal entry")
        assert bot.fake.calls("chat.postMessage", channel=channel) == []  # still reading the file
        bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")
        wait_until(lambda: bot.queue.redis.zcard(bot.queue.keys.intakes) == 0, what="the journal emptied")
    finally:
        bot.fake.set_download_delay(0.0)


def test_a_placeholder_that_landed_but_timed_out_is_found_not_refused(bot: BotUnderTest) -> None:
    """Slack posted the placeholder but answered after the client's timeout for the whole retry window:
    the intake finds it by its metadata and queues the question, rather than telling the asker that Slack
    failed beside an "Explaining…" that would never change (soak seed 3)."""
    replier = bot.services.flow.replier
    replier.client.timeout = 1
    replier.window_s = 2.0
    channel = unique("C")
    bot.fake.answer_late("chat.postMessage", 3.0, channel=channel, times=20)
    reply = bot.command(f"Who gave their name to Normandy? | {PASSAGE}", channel=channel)
    assert reply.status == 200
    wait_until(lambda: [j for j in bot.jobs() if j.reply_to.channel == channel], timeout=30, what="the job")
    time.sleep(3.5)  # the last late answers
    assert len([m for m in bot.fake.messages_in(channel) if m.get("user") == "UBOT"]) == 1
    assert bot.fake.calls("chat.postEphemeral", channel=channel) == []
    assert bot.fake.responses(reply.response_id or "") == []


def test_a_retry_while_redis_refuses_writes_says_nothing_when_the_first_delivery_was_taken(
        bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis filled up after the first delivery of a mention took it: Slack's retry cannot claim, but
    it can read that the first one did, so it tells the asker nothing (the first delivery gives the
    question its one outcome; before soak seed 5, the retry said "my job queue is full" beside it)."""
    channel = unique("C")
    root = bot.fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    event = bot.mention(channel, "Who gave their name to Normandy?", thread_ts=root["ts"])
    bot.fake.wait_for(lambda: placeholders(bot.fake, channel), what="the placeholder")

    def full(*args: object, **kwargs: object) -> bool:
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(bot.queue, "claim_once", full)
    assert bot.event(event, retry_num=1).status == 200
    time.sleep(1.5)
    assert bot.fake.calls("chat.postEphemeral", channel=channel) == []
    assert len(placeholders(bot.fake, channel)) == 1
