"""`/explain [--compare] question | passage`, `/explain` (a form), `/explain help`.

Split in two as Bolt's lazy listeners want it: `ack_explain` runs before the HTTP response
and does only CPU work (parse, validate, answer help and errors in the ack itself);
`run_explain` opens the form or queues the job afterwards.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.documents import slack_to_plain
from bot.intake import HELP_WORDS, USAGE, Ask, parse_options, split_question
from bot.listeners.guard import guarded
from bot.services import services
from explain_core.errors import InputError
from explain_core.jobs import JobOptions
from explain_core.validation import validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parsed:
    """What a command's text asks for: help, an error to show, the form, or a question."""

    kind: Literal["help", "error", "form", "ask"]
    question: str = ""
    passage: str = ""
    options: JobOptions = field(default_factory=JobOptions)
    error: str = ""


def parse(text: str) -> Parsed:
    try:
        options, rest = parse_options(slack_to_plain(text))
    except InputError as exc:
        return Parsed("error", error=exc.message)
    if rest.lower() in HELP_WORDS:
        return Parsed("help")
    question, passage = split_question(rest)
    if not passage:  # nothing typed, or a question without a passage: let the form ask
        return Parsed("form", question=question, options=options)
    try:
        validate(question, passage)
    except InputError as exc:
        return Parsed("error", error=f"{exc.message}\n{USAGE}")
    return Parsed("ask", question, passage, options)


def ack_explain(ack: Ack, command: dict[str, Any]) -> None:
    parsed = parse(command.get("text") or "")
    if parsed.kind == "help":
        ack(**blocks.help_message().kwargs())
    elif parsed.kind == "error":
        ack(**blocks.error(parsed.error).kwargs())
    else:
        ack()


def run_explain(command: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    parsed = parse(command.get("text") or "")
    if parsed.kind not in ("form", "ask"):
        return
    qa = services(context)
    team, channel, user = command["team_id"], command["channel_id"], command["user_id"]

    def work() -> None:
        if parsed.kind == "form":
            metadata = {"kind": "command", "team": team, "channel": channel, "compare": parsed.options.compare}
            try:
                qa.client.views_open(trigger_id=command["trigger_id"],
                                     view=blocks.modal(metadata, question=parsed.question))
            except SlackApiError as exc:
                log.warning("views.open failed: %s", exc.response.get("error"))
                raise InputError("form_failed", "I couldn't open the form in time. Run `/explain` again, "
                                                f"or type it in one go. {USAGE}") from None
            return
        qa.intake.submit(Ask(key=f"command:{team}:{command['trigger_id']}", team=team, channel=channel, user=user,
                             question=parsed.question, passage=parsed.passage, thread_ts=None,
                             options=parsed.options, show_asker=True, remember=True))

    guarded(work, lambda message: respond(response_type="ephemeral", **message.kwargs()))
