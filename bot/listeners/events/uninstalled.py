"""A workspace uninstalled the app, or revoked its bot token: forget it (bot/services.py, `forget`).

Slack sends both without an authorization to check (Bolt skips it for them), and after either
the bot can post nothing there: its installation is deleted, everything kept of the team goes
from Redis, and its questions still in line are dropped without a word.
"""
from __future__ import annotations

import logging
from typing import Any

from slack_bolt import BoltContext

from bot.services import services
from bot.workspaces import Workspace

log = logging.getLogger(__name__)


def run_uninstalled(event: dict[str, Any], context: BoltContext) -> None:
    if event.get("type") == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
        return  # only users' tokens: the bot's installation stands
    workspace = Workspace.of_context(context)
    svc = services(context)
    svc.flow.metrics.uninstalls.labels(event["type"]).inc()
    removed = svc.forget(workspace)
    log.info("%s: forgot %s (%s)", event.get("type"), workspace,
             ", ".join(f"{count} {kind}" for kind, count in sorted(removed.items())) or "nothing kept in Redis")
