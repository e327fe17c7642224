"""Block Kit builders: escaping, the bold answer span, Slack's length limits."""
from __future__ import annotations

import json

import pytest

from bot import blocks
from bot.blocks import mrkdwn, shorten_mrkdwn
from explain_core.present.summary import AnswerSummary, TopWord


def make_summary(**changes: object) -> AnswerSummary:
    values: dict = dict(answer="Rouen", confidence=0.456, no_answer=False,
                        sentence="The capital is Rouen, on the Seine.", answer_start=15, answer_end=20,
                        top_words=[TopWord("capital", 0.9, "question")], model="/models/tiny", model_label="tiny",
                        method="smoothgrad", method_label="SmoothGrad", latency_ms=2345.0, windows=3)
    values.update(changes)
    return AnswerSummary(**values)


@pytest.mark.parametrize("text, shown", [
    ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
    ("<!channel> <@U1> <https://x|y>", "&lt;!channel&gt; &lt;@U1&gt; &lt;https://x|y&gt;"),
    ("hi @here and @Channel, @everyone!", "hi @\u2060here and @\u2060Channel, @\u2060everyone!"),
    ("mail me@hereford.org", "mail me@hereford.org"),
])
def test_mrkdwn_neutralises_and_escapes(text: str, shown: str) -> None:
    assert mrkdwn(text) == shown


def test_long_sections_are_cut_without_breaking_an_escape() -> None:
    text = "x" * (blocks.SECTION_MAX - 3) + "&amp;tail"
    cut = shorten_mrkdwn(text)
    assert len(cut) <= blocks.SECTION_MAX and cut.endswith("x…")


def test_answer_blocks() -> None:
    message = blocks.answer("Where <is> it?", "U9", [make_summary()])
    assert message.text == "Answer: Rouen (46%)"
    texts = [b["text"]["text"] if "text" in b else b["elements"][0]["text"] for b in message.blocks]
    assert texts == [
        "*Question* from <@U9>: Where &lt;is&gt; it?",
        "*Answer:* Rouen   *Confidence:* 46%",
        ">The capital is *Rouen*, on the Seine.",
        "*Top words:* capital",
        "tiny · SmoothGrad · 2.3 s · 3 windows",
    ]
    assert all(b.get("text", {}).get("verbatim", True) for b in message.blocks)


def test_bold_span_keeps_spaces_outside_the_asterisks() -> None:
    summary = make_summary(sentence="The capital is Rouen , on it.", answer_start=14, answer_end=21)
    assert ">The capital is *Rouen* , on it." in json.dumps(blocks.answer("q", None, [summary]).blocks)


def test_placeholder_counts_the_queue() -> None:
    assert blocks.placeholder("q", None, 0).text == "Explaining…"
    assert blocks.placeholder("q", None, 1).text == "Explaining… 1 question ahead of you"
    assert blocks.placeholder("q", None, 2).text == "Explaining… 2 questions ahead of you"


def test_modal_for_a_message_has_no_passage_field() -> None:
    view = blocks.modal({"kind": "message", "channel": "C1"}, passage=None, source="the message & notes.pdf")
    assert [b.get("block_id") for b in view["blocks"]] == [None, "question"]
    assert "&amp; notes.pdf" in view["blocks"][0]["elements"][0]["text"]
    assert json.loads(view["private_metadata"]) == {"kind": "message", "channel": "C1"}
    assert len(view["title"]["text"]) <= 24


def test_fallback_text_is_escaped_too() -> None:
    summary = make_summary(answer="<!channel> & co")
    assert blocks.answer("q", None, [summary]).text == "Answer: &lt;!channel&gt; &amp; co (46%)"
    assert blocks.error("file <x>.txt").text == "file &lt;x&gt;.txt"
