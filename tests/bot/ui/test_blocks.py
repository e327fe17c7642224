"""Block Kit builders: user text shown as typed, the bold answer span, Slack's limits."""
from __future__ import annotations

import json
from typing import Any

import pytest

from bot.ui import blocks
from bot.ui.blocks import mrkdwn, shorten_mrkdwn
from explain_core.errors import Busy, Limited
from explain_core.present.summary import Alternative, AnswerSummary, RejectedSpan, TopWord
from explain_core.queue import QueueStats
from explain_core.wording import count, number


def make_summary(**changes: object) -> AnswerSummary:
    values: dict = dict(answer="Rouen", confidence=0.456, no_answer=False,
                        sentence="The capital is Rouen, on the Seine.", answer_start=15, answer_end=20,
                        top_words=[TopWord("capital", 0.9, "question")], model="/models/tiny", model_label="tiny",
                        method="smoothgrad", method_label="SmoothGrad", latency_ms=2345.0, windows=3)
    values.update(changes)
    return AnswerSummary(**values)


def rich_texts(block: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The elements of each part (section, quote) of a rich_text block."""
    return [part["elements"] for part in block["elements"]]


def shown(elements: list[dict[str, Any]]) -> str:
    """What a person reads from rich text elements (mentions as <@U>)."""
    return "".join(e.get("text") or f"<@{e.get('user_id')}>" if e["type"] != "emoji" else f":{e['name']}:"
                   for e in elements)


def check_limits(message: blocks.Message) -> None:
    """Slack's limits on a message (chat.postMessage/update reject what breaks them)."""
    assert 0 < len(message.blocks) <= 50
    assert len(message.text) <= 40_000
    for block in message.blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= 3000 for e in block["elements"])
        if block["type"] == "rich_text":
            for part in block["elements"]:
                assert part["elements"], "Slack refuses an empty rich text section"
                assert all(e.get("text", "x") for e in part["elements"]), "and empty text elements"
    assert len(json.dumps(message.blocks)) < 100_000


@pytest.mark.parametrize("text, escaped", [
    ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
    ("<!channel> <@U1> <https://x|y>", "&lt;!channel&gt; &lt;@U1&gt; &lt;https://x|y&gt;"),
    ("hi @here and @Channel, @everyone!", "hi @\u2060here and @\u2060Channel, @\u2060everyone!"),
    ("mail me@hereford.org", "mail me@hereford.org"),
])
def test_mrkdwn_neutralises_and_escapes(text: str, escaped: str) -> None:
    assert mrkdwn(text) == escaped


def test_long_sections_are_cut_without_breaking_an_escape() -> None:
    text = "x" * (blocks.SECTION_MAX - 3) + "&amp;tail"
    cut = shorten_mrkdwn(text)
    assert len(cut) <= blocks.SECTION_MAX and cut.endswith("x…")


def test_answer_blocks() -> None:
    message = blocks.answer("Where <is> it?", "U9", [make_summary()])
    assert message.text == "Answer: Rouen (46%)"
    question, answer, context = message.blocks
    assert shown(rich_texts(question)[0]) == "Question from <@U9>: Where <is> it?"
    assert [shown(part) for part in rich_texts(answer)] == [
        "Answer: Rouen   Confidence: 46%", "The capital is Rouen, on the Seine.", "Top words: capital"]
    assert rich_texts(answer)[1][0]["type"] == "text" and answer["elements"][1]["type"] == "rich_text_quote"
    assert [e for e in rich_texts(answer)[1] if e.get("style")] == [
        {"type": "text", "text": "Rouen", "style": {"bold": True}}]
    assert [e["text"] for e in context["elements"]] == ["tiny · SmoothGrad · 2.3 s · 3 windows"]
    check_limits(message)


def test_markup_in_user_text_shows_as_typed() -> None:
    """`*`, `_`, `~` and backticks in a question, an answer or a passage never format the reply."""
    sentence = "Use *stars*, _under_ ~strike~ and `code` here."
    summary = make_summary(answer="*stars*, _under_", sentence=sentence, answer_start=4, answer_end=20,
                           top_words=[TopWord("`code`", 1.0, "passage")], model_label="my_model_v2")
    message = blocks.answer("What is *bold* or _it_?", None, [summary])
    question, answer, context = message.blocks
    assert shown(rich_texts(question)[0]) == "Question: What is *bold* or _it_?"
    answer_line, quote, words = rich_texts(answer)
    assert shown(answer_line) == "Answer: *stars*, _under_   Confidence: 46%"
    assert shown(quote) == sentence
    assert {"type": "text", "text": "*stars*, _under_", "style": {"bold": True}} in quote
    assert shown(words) == "Top words: `code`"
    assert context["elements"][0]["type"] == "plain_text"  # a model name with underscores stays as it is
    assert context["elements"][0]["text"].startswith("my_model_v2 · ")


def test_mentions_and_broadcasts_in_rich_text_cannot_ping() -> None:
    message = blocks.placeholder("Hey <!channel> <@U123> @here & <#C1>?", None, 0)
    text = shown(rich_texts(message.blocks[0])[0])
    for ping in ("<!channel>", "<@U123>", "@here", "<#C1>"):
        assert ping not in text
    assert text.replace("\u2060", "") == "Question: Hey <!channel> <@U123> @here & <#C1>?"  # looks as typed


def test_bold_span_keeps_spaces_outside_the_bold_style() -> None:
    summary = make_summary(sentence="The capital is Rouen , on it.", answer_start=14, answer_end=21)
    quote = rich_texts(blocks.answer("q", None, [summary]).blocks[1])[1]
    assert quote == [{"type": "text", "text": "The capital is "},
                     {"type": "text", "text": "Rouen", "style": {"bold": True}}, {"type": "text", "text": " , on it."}]


def test_offsets_from_a_broken_worker_do_not_raise() -> None:
    summary = make_summary(sentence="short", answer_start=3, answer_end=99)
    check_limits(blocks.answer("q", None, [summary]))


def test_placeholder_names_the_question_and_counts_the_queue() -> None:
    assert blocks.placeholder("q & a", None, 0).text == "Explaining “q &amp; a”…"
    assert blocks.placeholder("q", None, 1).text == "Explaining “q”… (1 question in the queue)"
    assert blocks.placeholder("q", None, 2).text == "Explaining “q”… (2 questions in the queue)"
    assert len(blocks.placeholder("x" * 5000, None, 0).text) < 200  # a phone shows a line, not a page


def test_counts_are_written_one_way_wherever_they_are_shown() -> None:
    """Measured before: the placeholder said "(10000 questions in the queue)", the refusal "10,000"."""
    assert blocks.placeholder("q", None, 10_000).text == "Explaining “q”… (10,000 questions in the queue)"
    assert "(10,000 questions waiting)" in Busy(10_000).message
    assert Limited("user_limit", 1_000).message.startswith("you have 1,000 questions waiting")
    assert "1,200 windows" in json.dumps(blocks.answer("Q?", None, [make_summary(windows=1_200)]).blocks)
    home = json.dumps(blocks.home_view(bot_user=None, stats=QueueStats(
        waiting=12_345, in_progress=1_000, workers=1, dead_letters=0, results_waiting=0), workers=[], questions=[]),
                      ensure_ascii=False)
    assert "1 worker running · 12,345 questions waiting, 1,000 being answered" in home
    assert (count(1, "question"), count(0, "question"), number(1_234_567)) == ("1 question", "0 questions",
                                                                               "1,234,567")


def test_the_pictures_place_is_said_for_a_reply_that_starts_a_thread() -> None:
    text = json.dumps(blocks.answer("q", None, [make_summary()], pictures_in_thread=True).blocks)
    assert "The picture of the words the model relied on is in this message's thread." in text
    assert "thread" not in json.dumps(blocks.answer("q", None, [make_summary()]).blocks)


@pytest.mark.parametrize("models", [2, 12, 40])
def test_compare_stays_within_slacks_limits(models: int) -> None:
    long_words = [TopWord("w" * 200, 1.0, "passage")] * 30
    summaries = [make_summary(model_label=f"model-{i}", sentence="s" * 300 + " Rouen " + "t" * 300,
                              answer_start=301, answer_end=306, top_words=long_words,
                              faithfulness="hiding the 10% most salient passage words drops the confidence")
                 for i in range(models - 1)]
    summaries.append(make_summary(model_label="last", no_answer=True, answer="", sentence="",
                                  answer_start=0, answer_end=0, best_rejected=RejectedSpan("Paris", 0.2)))
    message = blocks.answer("q" * 600, "U1", summaries, pictures_in_thread=True)
    check_limits(message)
    check_limits(message.with_note("I couldn't update my message (Slack said: message_not_found)."))
    text = json.dumps(message.blocks, ensure_ascii=False)
    shown_models = min(models, blocks.COMPARE_SHOWN)
    assert sum(f'"text": "model-{i}"' in text for i in range(models - 1)) == min(models - 1, shown_models)
    if models > blocks.COMPARE_SHOWN:
        assert f"{models - blocks.COMPARE_SHOWN} more models answered" in text and "last" in text
    else:
        assert "answered (not shown" not in text and "Closest candidate: “Paris” (20%)" in text


def test_modal_for_a_message_has_no_passage_field() -> None:
    view = blocks.modal({"kind": "message", "channel": "C1"}, passage=None, source="the message & my_notes_v2.pdf")
    assert [b.get("block_id") for b in view["blocks"]] == [None, "question"]
    assert view["blocks"][0]["elements"][0] == {"type": "plain_text", "text": "Passage: the message & my_notes_v2.pdf",
                                                "emoji": False}
    assert json.loads(view["private_metadata"]) == {"kind": "message", "channel": "C1"}
    assert len(view["title"]["text"]) <= 24


def test_fallback_text_is_escaped_too() -> None:
    summary = make_summary(answer="<!channel> & co")
    assert blocks.answer("q", None, [summary]).text == "Answer: &lt;!channel&gt; &amp; co (46%)"
    assert blocks.error("file <x>.txt").text == "file &lt;x&gt;.txt"


def test_an_answer_with_buttons_offers_the_other_methods_other_answers_and_feedback() -> None:
    tag = "0123456789abcdef"
    message = blocks.answer("Where?", "U1", [make_summary()], actions=blocks.Actions(tag, "smoothgrad"))
    check_limits(message)
    actions, feedback = message.blocks[-2], message.blocks[-1]
    select, others = actions["elements"]
    assert [o["value"] for o in select["options"]] == [f"{m} {tag}" for m in ("vanilla", "grad_x_input",
                                                                              "integrated_gradients")]
    assert others["action_id"] == blocks.ACTION_OTHER_ANSWERS and others["value"] == tag
    [buttons] = feedback["elements"]
    assert feedback["type"] == "context_actions" and buttons["type"] == "feedback_buttons"
    assert (buttons["positive_button"]["value"], buttons["negative_button"]["value"]) == (f"helpful {tag}",
                                                                                         f"not_helpful {tag}")
    assert all(len(b["text"]["text"]) <= 75 for b in (buttons["positive_button"], buttons["negative_button"]))
    with_compare = blocks.answer("Where?", "U1", [make_summary()], actions=blocks.Actions(tag, "vanilla", True))
    assert [e["action_id"] for e in with_compare.blocks[-2]["elements"]][-1] == blocks.ACTION_COMPARE
    assert not any(b["type"] in ("actions", "context_actions") for b in blocks.answer("Where?", "U1",
                                                                                      [make_summary()]).blocks)


def test_other_answers_show_scores_sentences_and_user_text_as_typed() -> None:
    alternatives = [Alternative("*Rouen*", 0.61, "The capital is *Rouen*, on the Seine.", 15, 22),
                    Alternative("", 0.2, "", 0, 0),
                    Alternative("Seine", 0.001, "The capital is *Rouen*, on the Seine.", 31, 36)]
    message = blocks.other_answers("Where is <!channel>?", alternatives)
    check_limits(message)
    parts = rich_texts(message.blocks[0])
    lines = [shown(p) for p in parts]
    assert lines[0] == "Top answers to: Where is <\u2060!channel>?"
    assert lines[1] == "1. *Rouen* (61%)" and "The capital is *Rouen*" in lines[2]
    assert lines[3] == "2. No answer in this passage (20%)" and lines[4] == "3. Seine (<1%)"
    assert "&lt;!channel&gt;" in message.text


def test_a_placeholder_at_work_says_how_far_a_long_document_has_got() -> None:
    assert "Reading the document: 3 of 1,200 parts" in json.dumps(blocks.working("Q?", None, "reading", 3,
                                                                                1200).blocks)
    assert "Working on it" in json.dumps(blocks.working("Q?", None, "running").blocks)
    assert "Queued: 4 questions ahead of yours" in json.dumps(blocks.working("Q?", None, "queued", 4).blocks)
    assert "Queued: yours is next" in json.dumps(blocks.working("Q?", None, "queued", 0).blocks)
    assert blocks.working("Q?", "U1", "running").text.startswith("Explaining “Q?”")
