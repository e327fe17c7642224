"""Block Kit for everything the bot says: answers, placeholders, errors, help, the modal.

All user-supplied text (questions, passages, file names, answers taken from passages) goes
through `mrkdwn()` before it is shown, and the text objects holding it are `verbatim`, so
nothing a user pasted can ping a channel or a person or inject Slack markup. Each builder
returns the fallback `text` (notifications, screen readers) together with the blocks.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from explain_core.present.summary import AnswerSummary
from explain_core.queue import JobError

MODAL_CALLBACK_ID = "explain_modal"
QUESTION_BLOCK = "question"
PASSAGE_BLOCK = "passage"
INPUT_ACTION = "value"
MODAL_PASSAGE_MAX = 3000  # Slack's cap for a plain_text_input
QUESTION_SHOWN_MAX = 500
SECTION_MAX = 3000  # Slack's cap for a section's text

_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def mrkdwn(text: str) -> str:
    """User text made safe for mrkdwn: &, <, > escaped (so no <!channel>, <@U…> or links can
    form) and bare @here/@channel/@everyone broken with an invisible word joiner."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + _WORD_JOINER + m.group(1), escaped)


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (Slack rejects over-long fields)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten_mrkdwn(text), "verbatim": True}}


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t, "verbatim": True} for t in texts]}


def shorten_mrkdwn(text: str) -> str:
    """Keep a section under Slack's limit without cutting an escape like `&amp;` in half."""
    if len(text) <= SECTION_MAX:
        return text
    cut = text[: SECTION_MAX - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


@dataclass(frozen=True)
class Message:
    """A message body: fallback text plus blocks, ready for chat.postMessage/update/ack.

    The fallback `text` is mrkdwn too (notifications are built from it), so it is escaped
    like the blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def _question_line(question: str, asker: str | None) -> str:
    who = f" from <@{asker}>" if asker else ""
    return f"*Question*{who}: {mrkdwn(shorten(question, QUESTION_SHOWN_MAX))}"


def placeholder(question: str, asker: str | None, ahead: int) -> Message:
    """The reply while the job waits; updated in place with the answer later."""
    if ahead <= 0:
        status = "Explaining…"
    else:
        status = f"Explaining… {ahead} question{'s' if ahead != 1 else ''} ahead of you"
    return Message(text=status, blocks=[_section(_question_line(question, asker)),
                                        _context(f":hourglass_flowing_sand: {status}")])


def _percent(value: float) -> str:
    return f"{round(value * 100):d}%"


def _bold_span(summary: AnswerSummary) -> str:
    """The answer's sentence with the answer in bold (whitespace kept outside the asterisks,
    which Slack needs to render bold)."""
    s = summary.sentence
    before, span, after = s[: summary.answer_start], s[summary.answer_start: summary.answer_end], s[summary.answer_end:]
    core = span.strip()
    if not core:
        return mrkdwn(s)
    lead = span[: len(span) - len(span.lstrip())]
    trail = span[len(span.rstrip()):]
    return f"{mrkdwn(before)}{lead}*{mrkdwn(core)}*{trail}{mrkdwn(after)}"


def _context_line(summary: AnswerSummary) -> str:
    parts = [mrkdwn(summary.model_label), mrkdwn(summary.method_label)]
    if summary.latency_ms is not None:
        parts.append(f"{summary.latency_ms / 1000:.1f} s" if summary.latency_ms >= 1000
                     else f"{summary.latency_ms:.0f} ms")
    parts.append(f"{summary.windows} window{'s' if summary.windows != 1 else ''}")
    return " · ".join(parts)


def _answer_blocks(summary: AnswerSummary, *, with_model_header: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if with_model_header:
        blocks.append(_section(f"*{mrkdwn(summary.model_label)}*"))
    if summary.no_answer:
        line = f":grey_question: *No answer in this passage* (confidence {_percent(summary.confidence)})"
        if summary.best_rejected is not None:
            line += (f"\nClosest candidate: “{mrkdwn(shorten(summary.best_rejected.answer, 200))}” "
                     f"({_percent(summary.best_rejected.score)})")
        blocks.append(_section(line))
    else:
        blocks.append(_section(f"*Answer:* {mrkdwn(shorten(summary.answer, 500))}   "
                               f"*Confidence:* {_percent(summary.confidence)}"))
        if summary.sentence:
            blocks.append(_section(f">{_bold_span(summary)}"))
    if summary.top_words:
        words = " · ".join(mrkdwn(w.text) for w in summary.top_words)
        blocks.append(_section(f"*Top words:* {words}"))
    context = [_context_line(summary)]
    if summary.faithfulness:
        context.append(mrkdwn(summary.faithfulness))
    blocks.append(_context(*context))
    return blocks


def answer(question: str, asker: str | None, summaries: list[AnswerSummary]) -> Message:
    """The final reply: one answer, or one per model for `--compare`."""
    blocks = [_section(_question_line(question, asker))]
    several = len(summaries) > 1
    for i, summary in enumerate(summaries):
        if several and i:
            blocks.append({"type": "divider"})
        blocks.extend(_answer_blocks(summary, with_model_header=several))
    first = summaries[0]
    if first.no_answer:
        text = f"No answer in this passage ({_percent(first.confidence)})"
    else:
        text = f"Answer: {mrkdwn(shorten(first.answer, 200))} ({_percent(first.confidence)})"
    return Message(text=text, blocks=blocks)


def job_failed(question: str, asker: str | None, error: JobError) -> Message:
    """The reply when the worker could not answer (bad input it caught, or gave up)."""
    text = mrkdwn(f"I couldn't answer: {error.message}")
    return Message(text=text, blocks=[_section(_question_line(question, asker)), _section(f":warning: {text}")])


def error(message: str) -> Message:
    """An ephemeral message for bad input: what went wrong and what to do."""
    return Message(text=mrkdwn(message), blocks=[_section(f":warning: {mrkdwn(message)}")])


def notice(message: str) -> Message:
    """An ephemeral note that is not an error (e.g. "document read, ask in its thread")."""
    return Message(text=mrkdwn(message), blocks=[_section(f":page_facing_up: {mrkdwn(message)}")])


HELP_TEXT = (
    "*Ask me a question about a passage and I'll answer it and show which words mattered.*\n"
    "• `/explain What is X? | the passage…` answers about the passage after the `|`.\n"
    "• `/explain` alone (or with no passage) opens a form with a question and a passage field.\n"
    "• `/explain --compare question | passage` answers with every model the service offers.\n"
    "• In a thread whose first message is a document (pasted text, or a .txt, .md or .pdf file), "
    "mention me with your question. Later questions in the same thread reuse the document.\n"
    "• In a direct message, send `question | passage`, or post a document and ask in its thread.\n"
    "• On any message: *More actions* (⋮) → *Ask about this message*.\n"
    "I reply in the thread with the answer, my confidence, the sentence it came from and a picture "
    "of the words the model relied on. PDFs need a text layer (no scans)."
)


def help_message() -> Message:
    return Message(text="How to use the explain bot", blocks=[_section(HELP_TEXT)])


def modal(metadata: dict[str, Any], *, question: str = "", passage: str | None = "",
          source: str | None = None) -> dict[str, Any]:
    """The question form. `passage=None` hides the passage field (the message shortcut,
    whose passage is the message itself, described by `source`)."""
    blocks: list[dict[str, Any]] = []
    if source:
        blocks.append(_context(f"Passage: {mrkdwn(source)}"))
    blocks.append({
        "type": "input", "block_id": QUESTION_BLOCK,
        "label": {"type": "plain_text", "text": "Question"},
        "element": {"type": "plain_text_input", "action_id": INPUT_ACTION, "max_length": 500,
                    "placeholder": {"type": "plain_text", "text": "What do you want to know?"},
                    **({"initial_value": shorten(question, 500)} if question else {})},
    })
    if passage is not None:
        blocks.append({
            "type": "input", "block_id": PASSAGE_BLOCK,
            "label": {"type": "plain_text", "text": "Passage"},
            "hint": {"type": "plain_text", "text": "Up to 3,000 characters here; attach longer documents "
                                                   "to a message and ask in its thread."},
            "element": {"type": "plain_text_input", "action_id": INPUT_ACTION, "multiline": True,
                        "max_length": MODAL_PASSAGE_MAX,
                        **({"initial_value": passage[:MODAL_PASSAGE_MAX]} if passage else {})},
        })
    return {
        "type": "modal", "callback_id": MODAL_CALLBACK_ID,
        "title": {"type": "plain_text", "text": "Explain an answer"},
        "submit": {"type": "plain_text", "text": "Ask"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "blocks": blocks,
    }
