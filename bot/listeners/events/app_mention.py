"""A mention of the bot in a channel: a question about the thread's document (see questions.py)."""
from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.intake.parsing import without_mention
from bot.services import services

from .questions import answer_message


def run_mention(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    text = without_mention(event.get("text") or "", context.bot_user_id)
    answer_message(services(context), event, context.team_id or body["team_id"], text, "mention")
