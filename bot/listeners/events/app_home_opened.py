"""A person opened the bot's App Home: publish their Home tab (bot/ui/home.py).

Acked at once like every event; the view is built afterwards, as a lazy listener, since it reads
Redis and asks Slack for links. Slack sends the event for the Messages tab too: only the Home
tab gets a view.
"""
from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.services import services


def run_home(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    if event.get("tab") != "home":
        return
    services(context).home.publish(context.team_id or body["team_id"], event["user"], context.bot_user_id)
