"""What a person typed, read the same way wherever they typed it (slash command, mention, DM).

Slack hands the bot message text in its own markup (`<@U123>`, `<https://x|label>`,
`&amp;`), which would confuse the model, so it is turned back into what the reader saw.
Then come the leading `--options`, and `question | passage`. Pure functions, no Slack or
Redis calls: the slash command parses its text in the ack, before Slack's 3 seconds run out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from explain_core.errors import InputError
from explain_core.queue import JobOptions
from explain_core.validation import validate

HELP_WORDS = frozenset({"help", "-h", "--help", "?"})
USAGE = "Usage: `/explain question | passage`, or `/explain` alone for a form. `/explain help` tells more."

_SLACK_TOKEN = re.compile(r"<([^<>]*)>")


def slack_to_plain(text: str) -> str:
    """Slack message markup -> the text a reader sees (mentions as @name, links as their label).

    Slack escapes only &, < and > and wraps mentions, channels and links in <...>.
    """

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):  # user: <@U123> or <@U123|name>
            return "@" + (label or target[1:])
        if target.startswith("#"):  # channel: <#C123|general>
            return "#" + (label or target[1:])
        if target.startswith("!"):  # <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|fallback>
            command, _, argument = target[1:].partition("^")
            if command in ("here", "channel", "everyone"):
                return "@" + command
            if command == "subteam":
                return "@" + (label.lstrip("@") or argument)
            return label or command
        return label or target.removeprefix("mailto:")  # links

    plain = _SLACK_TOKEN.sub(replace, text)
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def without_mention(text: str, user_id: str | None) -> str:
    """The message text with the bot's own mention(s) removed (in Slack markup)."""
    if not user_id:
        return text
    return re.sub(rf"<@{re.escape(user_id)}(\|[^>]*)?>", " ", text).strip()


def parse_options(text: str) -> tuple[JobOptions, str]:
    """Leading `--flags` -> JobOptions, and the rest of the text. Only `--compare` exists."""
    compare = False
    rest = text.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.strip()
        if flag == "--compare":
            compare = True
        elif flag == "--help":
            return JobOptions(compare=compare), "help"
        else:
            raise InputError("unknown_option", f"I don't know the option {flag}. The only option is --compare, "
                                               "e.g. `/explain --compare question | passage`.")
    return JobOptions(compare=compare), rest


def split_question(text: str) -> tuple[str, str | None]:
    """`question | passage` -> (question, passage); no `|` -> (text, None)."""
    if "|" not in text:
        return text.strip(), None
    question, _, passage = text.partition("|")
    return question.strip(), passage.strip()


@dataclass(frozen=True)
class ParsedCommand:
    """What a slash command's text asks for: help, an error to show, the form, or a question."""

    kind: Literal["help", "error", "form", "ask"]
    question: str = ""
    passage: str = ""
    options: JobOptions = field(default_factory=JobOptions)
    error: str = ""


def parse_command(text: str) -> ParsedCommand:
    """`/explain`'s text (Slack markup) read, and a question with its passage validated."""
    try:
        options, rest = parse_options(slack_to_plain(text))
    except InputError as exc:
        return ParsedCommand("error", error=exc.message)
    if rest.lower() in HELP_WORDS:
        return ParsedCommand("help")
    question, passage = split_question(rest)
    if not passage:  # nothing typed, or a question without a passage: let the form ask
        return ParsedCommand("form", question=question, options=options)
    try:
        validate(question, passage)
    except InputError as exc:
        return ParsedCommand("error", error=f"{exc.message}\n{USAGE}")
    return ParsedCommand("ask", question, passage, options)
