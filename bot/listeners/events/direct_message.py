"""Messages in the bot's direct-message conversation (`message.im`).

Only what a person typed counts: edits, deletions, bot messages and the bot's own
placeholders (which Bolt already filters) are ignored, as are messages in other
conversation types in case the app is subscribed to them.
"""
from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.intake.parsing import without_mention
from bot.services import services

from .questions import answer_message

# Plain messages, and messages that share files; not edits, joins or bot posts.
_PERSON_SUBTYPES = (None, "file_share")


def run_direct_message(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    if event.get("channel_type") != "im" or event.get("subtype") not in _PERSON_SUBTYPES or event.get("bot_id"):
        return
    text = without_mention(event.get("text") or "", context.bot_user_id)
    answer_message(services(context), event, context.team_id or body["team_id"], text, "dm")
