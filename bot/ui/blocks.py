"""Block Kit for everything the bot says: answers, placeholders, errors, help, the modal.

Text a person typed or a passage holds (questions, answers, sentences, top words) travels in
`rich_text` blocks, whose text elements Slack shows literally: `*`, `_`, `~`, backticks, `&`,
`<` and `>` appear as typed, nothing in them can format the message, ping a channel or
form a link, and the bold answer span is a style, not markup. The bot's own sentences stay
mrkdwn; anything of the user's inside them goes through `mrkdwn()`. Each builder returns
the fallback `text` (mobile notifications show only that; mrkdwn, so escaped) with the blocks.

Slack's limits are kept here, where the blocks are built: at most `MAX_BLOCKS` blocks per
message, `SECTION_MAX` characters per section text, and a `--compare` reply lists at most
`COMPARE_SHOWN` models (the rest are named in one line; every picture still goes to the thread).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.ui.answers import Asked
from explain_core.present.summary import METHOD_LABELS, Alternative, AnswerSummary, method_label, model_label
from explain_core.queue import JobError, QueueStats, WorkerInfo
from explain_core.queue.feedback import HELPFUL, NOT_HELPFUL
from explain_core.wording import count, number

MODAL_CALLBACK_ID = "explain_modal"
# The answer's buttons (bot/listeners/actions/)
ACTION_FEEDBACK = "answer_feedback"
ACTION_ANOTHER_WAY = "answer_another_way"
ACTION_OTHER_ANSWERS = "answer_other_answers"
ACTION_COMPARE = "answer_compare"
QUESTION_BLOCK = "question"
PASSAGE_BLOCK = "passage"
INPUT_ACTION = "value"
MODAL_PASSAGE_MAX = 3000  # Slack's cap for a plain_text_input
QUESTION_SHOWN_MAX = 500
NOTIFICATION_QUESTION_MAX = 120  # the question as a phone notification shows it
SECTION_MAX = 3000  # Slack's cap for a section's text
MAX_BLOCKS = 50  # Slack's cap for one message
ANSWER_SHOWN_MAX = 500
SENTENCE_SHOWN_MAX = 1000  # the worker sends at most 300; a newer or broken worker is still bounded
TOP_WORDS_SHOWN = 10
WORD_SHOWN_MAX = 60
# Blocks per model in a comparison (divider, answer, context), and what a reply needs besides:
# the question, the "more models" line, the picture line and one note added on delivery.
# (A one-model answer adds its two rows of buttons; a comparison has none.)
_PER_MODEL = 3
COMPARE_SHOWN = (MAX_BLOCKS - 4) // _PER_MODEL

_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_CONTROL = re.compile(r"<([!@#])")
_WORD_JOINER = "\u2060"


def mrkdwn(text: str) -> str:
    """User text made safe for mrkdwn: &, <, > escaped (so no <!channel>, <@U…> or links can
    form) and bare @here/@channel/@everyone broken with an invisible word joiner."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _unbroadcast(escaped)


def _unbroadcast(text: str) -> str:
    return _BROADCAST.sub(lambda m: "@" + _WORD_JOINER + m.group(1), text)


def _literal(text: str) -> str:
    """Text for a rich_text element: shown as typed. Slack does not parse these elements, and
    a word joiner after `<` before `!`, `@` or `#` (invisible) keeps even a client that did
    from seeing a mention or a broadcast in them."""
    return _unbroadcast(_CONTROL.sub(lambda m: "<" + _WORD_JOINER + m.group(1), text))


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (Slack rejects over-long fields)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": shorten_mrkdwn(text), "verbatim": True}}


def _context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": shorten_mrkdwn(t), "verbatim": True}
                                            for t in texts]}


def _plain_context(*texts: str) -> dict[str, Any]:
    """A context line shown literally (names chosen by an operator or a user: `my_model` stays)."""
    return {"type": "context", "elements": [{"type": "plain_text", "text": shorten(t, SECTION_MAX), "emoji": False}
                                            for t in texts]}


def shorten_mrkdwn(text: str) -> str:
    """Keep a section under Slack's limit without cutting an escape like `&amp;` in half."""
    if len(text) <= SECTION_MAX:
        return text
    cut = text[: SECTION_MAX - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


# -- rich text: literal user text ----------------------------------------------------------------
def _text(text: str, **style: bool) -> dict[str, Any]:
    """A literal text element (empty text is not allowed by Slack; callers skip it)."""
    element: dict[str, Any] = {"type": "text", "text": _literal(text)}
    if style:
        element["style"] = style
    return element


def _rich(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "rich_text", "elements": list(parts)}


def _line(*elements: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "rich_text_section", "elements": [e for e in elements if e is not None and e.get("text") != ""]}


def _quote(*elements: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "rich_text_quote", "elements": [e for e in elements if e is not None and e.get("text") != ""]}


@dataclass(frozen=True)
class Message:
    """A message body: fallback text plus blocks, ready for chat.postMessage/update/ack.

    The fallback `text` is mrkdwn too (notifications are built from it), so it is escaped
    like the blocks."""

    text: str
    blocks: list[dict[str, Any]]

    def kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}

    def with_note(self, note: str) -> Message:
        """This message with a line saying why it arrives where it does (a fallback's reason).
        Builders leave room for it, so the message stays within `MAX_BLOCKS`."""
        return Message(self.text, [*self.blocks[: MAX_BLOCKS - 1], _context(f":information_source: {note}")])


def _question_line(question: str, asker: str | None) -> dict[str, Any]:
    who = [_text(" from "), {"type": "user", "user_id": asker}] if asker else []
    return _line(_text("Question", bold=True), *who, _text(": "), _text(shorten(question, QUESTION_SHOWN_MAX)))


PENDING = "Explaining"  # how every placeholder's text begins


def _notification(prefix: str, question: str) -> str:
    return f"{prefix} “{mrkdwn(shorten(question, NOTIFICATION_QUESTION_MAX))}”"


def placeholder(question: str, asker: str | None, waiting: int) -> Message:
    """The reply while the job waits; updated in place with where it is, then with the answer
    (or what happened). The notification names the question, since a phone shows nothing else."""
    queue = f" ({count(waiting, 'question')} in the queue)" if waiting > 0 else ""
    return _pending(question, asker, f":hourglass_flowing_sand: Explaining…{queue}", queue)


def working(question: str, asker: str | None, stage: str, done: int = 0, total: int = 0) -> Message:
    """The placeholder while the question waits or is worked on: `queued` with `done` questions
    ahead of it, `running`, or `reading` `done` of `total` parts of a long document."""
    if stage == "queued":
        ahead = f"{count(done, 'question')} ahead of yours" if done else "yours is next"
        return _pending(question, asker, f":hourglass_flowing_sand: Queued: {ahead}…")
    if stage == "reading" and total > 1:
        return _pending(question, asker, f":gear: Reading the document: {number(done)} of {count(total, 'part')}…")
    return _pending(question, asker, ":gear: Working on it: finding the answer and the words that mattered…")


def is_pending(text: str) -> bool:
    """Whether a message's text is a placeholder's (the question still on its way), not an outcome."""
    return text.startswith(f"{PENDING} “")


def _pending(question: str, asker: str | None, line: str, note: str = "") -> Message:
    return Message(text=_notification(PENDING, question) + "…" + note,
                   blocks=[_rich(_question_line(question, asker)), _context(line)])


def _percent(value: float) -> str:
    """A probability as people read it; a small one stays visible as "<1%" rather than "0%"."""
    if 0 < value < 0.005:
        return "<1%"
    return f"{round(value * 100):d}%"


def _sentence_quote(s: str, answer_start: int, answer_end: int) -> dict[str, Any]:
    """A sentence as a quote, `s[answer_start:answer_end]` in bold (whitespace kept outside the
    bold style). Offsets from the worker are clamped, so a broken result cannot raise here."""
    start = max(0, min(answer_start, len(s)))
    end = max(start, min(answer_end, len(s)))
    before, span, after = s[:start], s[start:end], s[end:]
    core = span.strip()
    if not core:
        return _quote(_text(shorten(s, SENTENCE_SHOWN_MAX)))
    lead = span[: len(span) - len(span.lstrip())]
    trail = span[len(span.rstrip()):]
    budget = max(0, SENTENCE_SHOWN_MAX - len(core)) // 2
    before = before if len(before) <= budget else "…" + before[len(before) - budget + 1:]
    after = after if len(after) <= budget else after[: budget - 1] + "…"
    return _quote(_text(before + lead), _text(shorten(core, ANSWER_SHOWN_MAX), bold=True), _text(trail + after))


def _context_line(summary: AnswerSummary) -> list[str]:
    parts = [summary.model_label, summary.method_label]
    if summary.latency_ms is not None:
        parts.append(f"{summary.latency_ms / 1000:.1f} s" if summary.latency_ms >= 1000
                     else f"{summary.latency_ms:.0f} ms")
    parts.append(count(summary.windows, "window"))
    line = [" · ".join(parts)]
    if summary.faithfulness:
        line.append(summary.faithfulness)
    return line


def _answer_blocks(summary: AnswerSummary, *, with_model_header: bool) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if with_model_header:
        parts.append(_line(_text(shorten(summary.model_label, 200), bold=True)))
    if summary.no_answer:
        line = [_text("No answer in this passage", bold=True), _text(f" (confidence {_percent(summary.confidence)})")]
        if summary.best_rejected is not None:
            line += [_text(f"\nClosest candidate: “{shorten(summary.best_rejected.answer, 200)}” "
                           f"({_percent(summary.best_rejected.score)})")]
        parts.append(_line({"type": "emoji", "name": "grey_question"}, _text(" "), *line))
    else:
        parts.append(_line(_text("Answer: ", bold=True), _text(shorten(summary.answer, ANSWER_SHOWN_MAX) or "…"),
                           _text("   "), _text("Confidence: ", bold=True), _text(_percent(summary.confidence))))
        if summary.sentence.strip():
            parts.append(_sentence_quote(summary.sentence, summary.answer_start, summary.answer_end))
    if summary.top_words:
        words = " · ".join(shorten(w.text, WORD_SHOWN_MAX) for w in summary.top_words[:TOP_WORDS_SHOWN])
        parts.append(_line(_text("Top words: ", bold=True), _text(words)))
    return [_rich(*parts), _plain_context(*_context_line(summary))]


def answer(question: str, asker: str | None, summaries: list[AnswerSummary], *,
           pictures_in_thread: bool = False, actions: Actions | None = None) -> Message:
    """The final reply: one answer, or one per model for `--compare` (at most `COMPARE_SHOWN`).

    `pictures_in_thread` adds where the pictures are, for a reply that starts a thread
    (`/explain`, the form): Slack shows a thread's files only to those who open it.
    `actions` adds the answer's buttons (a one-model answer's)."""
    blocks = [_rich(_question_line(question, asker))]
    several = len(summaries) > 1
    shown = summaries[:COMPARE_SHOWN]
    for i, summary in enumerate(shown):
        if several and i:
            blocks.append({"type": "divider"})
        blocks.extend(_answer_blocks(summary, with_model_header=several))
    hidden = summaries[len(shown):]
    if hidden:
        names = ", ".join(s.model_label for s in hidden)
        blocks.append(_plain_context(f"{count(len(hidden), 'more model', 'more models')} answered "
                                     f"(not shown, to fit Slack's limits): {names}"))
    if pictures_in_thread:
        what = "The pictures of the words each model relied on are" if several else \
            "The picture of the words the model relied on is"
        blocks.append(_context(f":frame_with_picture: {what} in this message's thread."))
    if actions is not None:
        blocks.extend(_action_blocks(actions))
    first = summaries[0]
    if first.no_answer:
        text = f"No answer in this passage ({_percent(first.confidence)})"
    else:
        text = f"Answer: {mrkdwn(shorten(first.answer, 200))} ({_percent(first.confidence)})"
    return Message(text=text, blocks=blocks)


@dataclass(frozen=True)
class Actions:
    """An answer's buttons: `tag` names the answer (`bot.ui.answers`), `method` is the one shown
    (not offered again), `compare` offers a comparison (the worker has several models)."""

    tag: str
    method: str
    compare: bool = False


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _action_blocks(actions: Actions) -> list[dict[str, Any]]:
    """"Explain another way" (the other saliency methods), "Other answers", "Compare models",
    and Slack's feedback buttons. Values carry the method or vote and the answer's tag."""
    methods = [m for m in METHOD_LABELS if m != actions.method]
    elements: list[dict[str, Any]] = [
        {"type": "static_select", "action_id": ACTION_ANOTHER_WAY, "placeholder": _plain("Explain another way"),
         "options": [{"text": _plain(method_label(m)), "value": f"{m} {actions.tag}"} for m in methods]},
        {"type": "button", "action_id": ACTION_OTHER_ANSWERS, "text": _plain("Other answers"), "value": actions.tag},
    ]
    if actions.compare:
        elements.append({"type": "button", "action_id": ACTION_COMPARE, "text": _plain("Compare models"),
                         "value": actions.tag})
    feedback = {"type": "feedback_buttons", "action_id": ACTION_FEEDBACK,
                "positive_button": {"text": _plain("👍 Helpful"), "value": f"{HELPFUL} {actions.tag}",
                                    "accessibility_label": "This answer was helpful"},
                "negative_button": {"text": _plain("👎 Not helpful"), "value": f"{NOT_HELPFUL} {actions.tag}",
                                    "accessibility_label": "This answer was not helpful"}}
    return [{"type": "actions", "block_id": f"answer_actions_{actions.tag}", "elements": elements},
            {"type": "context_actions", "block_id": f"answer_feedback_{actions.tag}", "elements": [feedback]}]


def other_answers(question: str, alternatives: list[Alternative]) -> Message:
    """The pipeline's top answers to a question, each with its score and its sentence."""
    parts: list[dict[str, Any]] = [_line(_text("Top answers to: ", bold=True),
                                         _text(shorten(question, QUESTION_SHOWN_MAX)))]
    for i, alt in enumerate(alternatives, 1):
        if not alt.answer:
            parts.append(_line(_text(f"{i}. "), _text("No answer in this passage", bold=True),
                               _text(f" ({_percent(alt.score)})")))
            continue
        parts.append(_line(_text(f"{i}. "), _text(shorten(alt.answer, ANSWER_SHOWN_MAX), bold=True),
                           _text(f" ({_percent(alt.score)})")))
        if alt.sentence.strip():
            parts.append(_sentence_quote(alt.sentence, alt.answer_start, alt.answer_end))
    if not alternatives:
        parts.append(_line(_text("The model found no other answer.")))
    text = f"Top answers to “{mrkdwn(shorten(question, NOTIFICATION_QUESTION_MAX))}”"
    return Message(text=text, blocks=[_rich(*parts)])


def job_failed(question: str, asker: str | None, error: JobError) -> Message:
    """The reply when the worker could not answer (bad input it caught, or gave up)."""
    return outcome(question, asker, f"I couldn't answer: {error.message}")


def outcome(question: str, asker: str | None, message: str, icon: str = ":warning:") -> Message:
    """The placeholder's final state when there is no answer: the question, then what happened
    and what to do (a refusal, a lost or timed-out question, a duplicate)."""
    text = mrkdwn(message)
    return Message(text=text, blocks=[_rich(_question_line(question, asker)), _section(f"{icon} {text}")])


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
        blocks.append(_plain_context(f"Passage: {source}"))
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


HOME_MAX_BLOCKS = 100  # Slack's cap for a Home tab view


def home_view(*, bot_user: str | None, stats: QueueStats | None, workers: list[WorkerInfo],
              questions: list[tuple[Asked, str, str | None]] | None) -> dict[str, Any]:
    """The App Home tab: the four ways to ask of HELP_TEXT, each with an example; the service
    (`stats` None: Redis could not be read) with the models and methods its live `workers` offer;
    the person's recent `questions`, newest first, each with what became of it and the link to
    its reply (None: Redis could not be read). Questions, and model names an operator chose, are
    rich_text, shown as typed; at most `HOME_MAX_BLOCKS` blocks whatever the number of questions."""
    me = f"<@{bot_user}>" if bot_user else "@explain"
    example = "Who built the lighthouse? | The lighthouse was built by Robert Stevenson in 1810."
    view: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("Ask me about a passage")},
        _section("I answer a question about a passage and show which words mattered: the answer, my confidence, "
                 "the sentence it came from and a picture of the words the model relied on."),
        _section(f"*1. The `/explain` command*, in any channel:\n`/explain {example}`\n`/explain` alone opens a "
                 "form; `/explain --compare question | passage` answers with every model the service offers."),
        _section("*2. Mention me in a document's thread*: post a document (pasted text, or a .txt, .md or .pdf "
                 f"file), then write in its thread: {me} Who built the lighthouse?\nLater questions in the same "
                 "thread reuse the document. PDFs need a text layer (no scans)."),
        _section(f"*3. A direct message*: in my *Messages* tab, send `{example}`, or post a document there and "
                 "ask in its thread."),
        _section("*4. Ask about this message*: on any message, *More actions* (⋮) → *Ask about this message*, then "
                 "type your question in the form; the message and its files are the passage."),
        {"type": "divider"},
        {"type": "header", "text": _plain("The service")},
    ]
    if stats is None:
        view.append(_section(":warning: The service's status is unavailable right now (I can't reach its queue). "
                             "Open this tab again in a minute."))
    else:
        alive = (f":large_green_circle: {count(stats.workers, 'worker')} running"
                 if stats.workers else ":red_circle: No worker is running: questions wait until one starts")
        view.append(_section(f"{alive} · {count(stats.waiting, 'question')} waiting, "
                             f"{number(stats.in_progress)} being answered"))
        defaults = list(dict.fromkeys(w.model for w in workers))
        models = defaults + [m for m in dict.fromkeys(m for w in workers for m in w.models) if m not in defaults]
        offered = {m for w in workers for m in w.methods}
        methods = [m for m in METHOD_LABELS if m in offered] + sorted(offered - METHOD_LABELS.keys())
        if models:
            names = ", ".join(model_label(m) + (" (default)" if m in defaults else "") for m in models)
            labels = ", ".join(map(method_label, methods))
            view.append(_rich(_line(_text("Models: ", bold=True), _text(names))))
            view.append(_rich(_line(_text("Saliency methods: ", bold=True), _text(labels))))
        else:
            view.append(_context("The models and saliency methods show here while a worker runs."))
    view += [{"type": "divider"}, {"type": "header", "text": _plain("Your recent questions")}]
    if questions is None:
        view.append(_context(":warning: Your recent questions are unavailable right now."))
    elif not questions:
        view.append(_context("None yet: ask one of the four ways above, and it shows here with a link to the answer."))
    for asked, status, link in (questions or [])[: (HOME_MAX_BLOCKS - len(view)) // 2]:
        view.append(_rich(_line(_text(shorten(asked.question, QUESTION_SHOWN_MAX)))))
        when = datetime.fromtimestamp(asked.at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        view.append(_context(f"{mrkdwn(status)} · <!date^{int(asked.at)}^asked {{date_short_pretty}} at {{time}}"
                             f"|asked {when}>" + (f" · <{link}|open the reply>" if link else "")))
    return {"type": "home", "blocks": view}
