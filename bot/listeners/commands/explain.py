"""`/explain [--compare] question | passage`, `/explain` (a form), `/explain help`.

Split in two as Bolt's lazy listeners want it: `ack_explain` runs before the HTTP response
and does only CPU work (parse, validate, answer help and errors in the ack itself);
`run_explain` opens the form or queues the job afterwards.
"""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk.errors import SlackApiError

from bot.intake.parsing import USAGE, parse_command
from bot.intake.submit import Ask
from bot.listeners.guard import guarded
from bot.services import services
from bot.ui import blocks
from explain_core.errors import InputError

log = logging.getLogger(__name__)


def ack_explain(ack: Ack, command: dict[str, Any]) -> None:
    parsed = parse_command(command.get("text") or "")
    if parsed.kind == "help":
        ack(**blocks.help_message().kwargs())
    elif parsed.kind == "error":
        ack(**blocks.error(parsed.error).kwargs())
    else:
        ack()


def run_explain(command: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    parsed = parse_command(command.get("text") or "")
    if parsed.kind not in ("form", "ask"):
        return
    svc = services(context)
    team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
    key = f"command:{team}:{command['trigger_id']}"

    def work() -> None:
        if not svc.intake.first_request(key, lambda message: svc.intake.tell(
                channel, user, None, message, command.get("response_url"))):
            return  # a replay of this very request
        if parsed.kind == "form":
            metadata = {"kind": "command", "team": team, "channel": channel, "compare": parsed.options.compare,
                        "response_url": command.get("response_url")}
            try:
                svc.client.views_open(trigger_id=command["trigger_id"],
                                      view=blocks.modal(metadata, question=parsed.question))
            except SlackApiError as exc:
                log.warning("views.open failed: %s", exc.response.get("error"))
                raise InputError("form_failed", "I couldn't open the form in time. Run `/explain` again, "
                                                f"or type it in one go. {USAGE}") from None
            return
        svc.intake.submit(Ask(key=key, team=team, channel=channel, user=user,
                              question=parsed.question, passage=parsed.passage, thread_ts=None,
                              options=parsed.options, show_asker=True, remember=True, private=True,
                              response_url=command.get("response_url")))

    guarded(work, lambda message: respond(response_type="ephemeral", **message.kwargs()))
