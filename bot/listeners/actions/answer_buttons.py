"""The buttons under an answer: feedback, "Explain another way", "Other answers", "Compare models".

The ack is the whole synchronous part (Slack wants it within 3 s); the work runs lazily in
`bot.ui.followups.FollowUps`, and whatever the clicker should know (thanks, "already in the
thread", "this answer has expired", a refusal) comes back as an ephemeral message in the
answer's thread. A value that is not what the bot put on its buttons is told as such.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext

from bot.listeners.guard import guarded
from bot.services import Services, services
from bot.ui import blocks
from explain_core.errors import InputError


@dataclass(frozen=True)
class Click:
    """Who clicked what under which answer, from a block_actions payload."""

    team: str
    user: str
    channel: str
    thread_ts: str | None
    value: str
    response_url: str | None = None  # reaches the clicker where the bot can no longer post (removed, ephemeral)

    @classmethod
    def of(cls, body: dict[str, Any], action: dict[str, Any]) -> Click:
        message = body.get("message") or {}
        # Only a reply's thread: an ephemeral in the thread of a message in the channel shows only
        # to someone who opens that thread, not to the person who clicked in the channel.
        thread_ts = message.get("thread_ts") if message.get("thread_ts") != message.get("ts") else None
        value = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""
        return cls(team=team, user=body["user"]["id"], channel=(body.get("channel") or {}).get("id") or "",
                   thread_ts=thread_ts, value=str(value),
                   response_url=body.get("response_url"))

    def split(self) -> tuple[str, str]:
        """`choice tag` (a vote or a method, then the answer's tag)."""
        choice, _, answer_tag = self.value.partition(" ")
        if not answer_tag:
            raise InputError("bad_click", "I couldn't read that button. Ask the question again.")
        return choice, answer_tag


def _run(body: dict[str, Any], action: dict[str, Any], context: BoltContext,
         work: Callable[[Services, Click], blocks.Message | None]) -> None:
    svc = services(context)
    svc.flow.metrics.clicks.labels(action.get("action_id") or "-").inc()  # only the registered ids reach here
    click = Click.of(body, action)

    def tell(message: blocks.Message) -> None:
        svc.intake.tell(click.channel, click.user, click.thread_ts, message, click.response_url)

    def run() -> None:
        message = work(svc, click)
        if message is not None:
            tell(message)

    guarded(run, tell)


def run_feedback(body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _run(body, action, context, lambda svc, click: svc.followups.vote(click.split()[1], click.user, click.team,
                                                                       click.split()[0]))


def run_another_way(body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _run(body, action, context, lambda svc, click: svc.followups.another_way(click.split()[1], click.split()[0],
                                                                              click.user))


def run_other_answers(body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _run(body, action, context, lambda svc, click: svc.followups.others(click.value, click.user))


def run_compare(body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
    _run(body, action, context, lambda svc, click: svc.followups.compare(click.value, click.user))
