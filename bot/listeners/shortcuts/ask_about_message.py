"""Message shortcut "Ask about this message": a form for the question; the message (and its
files) is the passage.

The shortcut's payload carries the whole message, which the form submission does not, and a
message can be far longer than a view's private_metadata (3,000 characters). So the
message is stashed in Redis for an hour and the form carries only where it came from.
Files are read at submission time, where errors reach the user as ephemeral messages.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import redis
from slack_bolt import Ack, BoltContext
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.documents import file_kind
from bot.intake import redis_down
from bot.services import Services, services

log = logging.getLogger(__name__)

CALLBACK_ID = "ask_about_message"
STASH_TTL_S = 3600
# What the document reader needs from a message; the rest (reactions, blocks) is left out.
_KEPT = ("ts", "thread_ts", "text", "files", "user")


def _stash_key(qa: Services, team: str, channel: str, ts: str) -> str:
    return f"{qa.settings.namespace}:shortcut:{team}:{channel}:{ts}"


def stashed_message(qa: Services, team: str, channel: str, ts: str) -> dict[str, Any] | None:
    """The message stashed by the shortcut, or None if it expired (the thread reader then
    fetches it from Slack)."""
    try:
        data = qa.queue.redis.get(_stash_key(qa, team, channel, ts))
    except redis.RedisError:
        raise redis_down() from None
    return json.loads(data) if data is not None else None


def _describe(message: dict[str, Any]) -> str:
    files = [f.get("name") or "a file" for f in message.get("files") or [] if file_kind(f) is not None]
    text = (message.get("text") or "").strip()
    parts = [f"the message ({len(text):,} characters)"] if text else ["the message"]
    if files:
        parts.append("and " + ", ".join(files))
    return " ".join(parts)


def ack_shortcut(ack: Ack) -> None:
    ack()


def open_form(shortcut: dict[str, Any], context: BoltContext) -> None:
    qa = services(context)
    team = shortcut["team"]["id"]
    channel = shortcut["channel"]["id"]
    message = {k: v for k, v in shortcut["message"].items() if k in _KEPT}
    metadata = {"kind": "message", "team": team, "channel": channel, "message_ts": message["ts"],
                "thread_ts": message.get("thread_ts") or message["ts"]}
    try:
        qa.client.views_open(trigger_id=shortcut["trigger_id"],
                             view=blocks.modal(metadata, passage=None, source=_describe(message)))
    except SlackApiError as exc:
        log.warning("views.open failed for the message shortcut: %s", exc.response.get("error"))
        qa.intake.tell(channel, shortcut["user"]["id"], metadata["thread_ts"],
                       blocks.error("I couldn't open the form in time. Please use the shortcut again."))
        return
    try:
        qa.queue.redis.set(_stash_key(qa, team, channel, message["ts"]), json.dumps(message), ex=STASH_TTL_S)
    except redis.RedisError:
        # The submission will find no stash, try to fetch the message, and report Redis if it is still down.
        log.warning("could not stash the shortcut's message: Redis unavailable")
