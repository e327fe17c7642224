"""Message shortcut "Ask about this message": a form for the question; the message (and its
files) is the passage.

The form's submission does not carry the message, so it is stashed with the document
service (`bot.intake.documents.Documents.stash`) and the form carries only where it came from.
Files are read at submission time, where errors reach the user as ephemeral messages.
"""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk.errors import SlackApiError

from bot.intake.files import file_kind
from bot.services import services
from bot.ui import blocks
from explain_core.errors import Refusal
from explain_core.wording import count

log = logging.getLogger(__name__)

CALLBACK_ID = "ask_about_message"


def _describe(message: dict[str, Any]) -> str:
    files = [f.get("name") or "a file" for f in message.get("files") or [] if file_kind(f) is not None]
    text = (message.get("text") or "").strip()
    parts = [f"the message ({count(len(text), 'character')})"] if text else ["the message"]
    if files:
        parts.append("and " + ", ".join(files))
    return " ".join(parts)


def ack_shortcut(ack: Ack) -> None:
    ack()


def open_form(shortcut: dict[str, Any], context: BoltContext) -> None:
    svc = services(context)
    team = shortcut["team"]["id"]
    channel = shortcut["channel"]["id"]
    message = shortcut["message"]
    # The form's submission carries no response_url: the shortcut's goes along in the metadata,
    # the one way to reach the asker in a conversation the bot cannot post in.
    metadata = {"kind": "message", "team": team, "channel": channel, "message_ts": message["ts"],
                "thread_ts": message.get("thread_ts") or message["ts"], "response_url": shortcut.get("response_url")}
    user = shortcut["user"]["id"]

    def tell(notice: blocks.Message) -> None:
        svc.intake.tell(channel, user, metadata["thread_ts"], notice, metadata["response_url"])

    try:
        if not svc.intake.first_request(f"shortcut:{team}:{shortcut['trigger_id']}", tell):
            return  # a replay: its trigger is spent, and one form is open already
    except Refusal as exc:  # Redis refuses writes: the form could not be submitted anyway
        tell(blocks.error(exc.message))
        return
    # Kept before the form opens: a quick submission must find it (at most an hour if the form fails).
    svc.documents.stash(team, channel, message)
    try:
        svc.client.views_open(trigger_id=shortcut["trigger_id"],
                              view=blocks.modal(metadata, passage=None, source=_describe(message)))
    except SlackApiError as exc:
        log.warning("views.open failed for the message shortcut: %s", exc.response.get("error"))
        tell(blocks.error("I couldn't open the form in time. Please use the shortcut again."))
