"""A person's App Home tab: how to ask, what the service offers and whether it is up, and their
own latest questions with what became of each and a link to its reply.

Slack shows the last view published for that person, so it is rebuilt on each `app_home_opened`
(after the ack, in a lazy listener). The work is bounded: two Redis reads for the service, two for
the questions, and at most `Keys.RECENT_KEPT` permalink lookups within `PERMALINK_BUDGET_S`; a
lookup that fails only drops its link. Redis down still publishes the view, saying what cannot be
read right now. Slack or Redis trouble is logged (its error code or class, never a token) and never
reaches the listener: there is no one to tell but the log.
"""
from __future__ import annotations

import logging
import time

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.outcome.tracking import Outcome, Outcomes
from bot.ui import blocks
from bot.ui.answers import Asked, Recent
from explain_core.queue import JobQueue, Keys, QueueStats, WorkerInfo

log = logging.getLogger(__name__)

PERMALINK_BUDGET_S = 5.0  # the lookups of one view together; later links are left out

STATUS = {
    Outcome.ANSWER: "answered",
    Outcome.FAILED: "not answered: the reply says why",
    Outcome.REFUSED: "not taken: the queue was full or a limit was reached",
    Outcome.LOST: "lost by the queue: please ask again",
    Outcome.UNQUEUED: "not queued, the service had a problem: please ask again",
    Outcome.TIMEOUT: "not answered in time: please ask again",
}
WAITING = "waiting for an answer"
# No outcome and older than any outcome is kept (`Keys.REPLY_TTL_S`): it was settled, and the
# record of how has expired; the reply itself says it.
EXPIRED = "finished: open the reply to see it"


class Home:
    """Builds and publishes App Home views; one per process, shared by listener threads
    (the client and the Redis pool are thread-safe, nothing else is kept)."""

    def __init__(self, client: WebClient, queue: JobQueue, recent: Recent, outcomes: Outcomes) -> None:
        self._client = client
        self._queue = queue
        self._recent = recent
        self._outcomes = outcomes

    def publish(self, team: str, user: str, bot_user: str | None = None) -> None:
        """Publish `user`'s Home view; `bot_user` (the bot's user id) makes the mention example
        a real mention. Logs, never raises, on Slack or Redis trouble."""
        stats, workers = self._service()
        view = blocks.home_view(bot_user=bot_user, stats=stats, workers=workers, questions=self._questions(team, user))
        try:
            self._client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            log.warning("could not publish the App Home: Slack said %s", exc.response.get("error"))
        except (SlackClientError, OSError) as exc:
            log.warning("could not publish the App Home: %s", type(exc).__name__)

    def _service(self) -> tuple[QueueStats | None, list[WorkerInfo]]:
        """The queue's health and what the live workers offer; (None, []) when Redis cannot say."""
        try:
            return self._queue.stats(), self._queue.workers()
        except redis.RedisError as exc:
            log.warning("App Home without the service's status: Redis unavailable (%s)", type(exc).__name__)
            return None, []

    def _questions(self, team: str, user: str) -> list[tuple[Asked, str, str | None]] | None:
        """(question, what became of it, link to its reply) newest first; None when Redis cannot say."""
        try:
            asked = self._recent.of(team, user)
            outcomes = self._outcomes.get_many([a.key for a in asked])
        except redis.RedisError as exc:
            log.warning("App Home without the recent questions: Redis unavailable (%s)", type(exc).__name__)
            return None
        now = time.time()
        return [(a, _status(outcome, now - a.at), link)
                for a, outcome, link in zip(asked, outcomes, self._permalinks(asked))]

    def _permalinks(self, asked: list[Asked]) -> list[str | None]:
        """The reply's link for each question (the placeholder, which the reply replaced in place),
        None where Slack would not say or the budget ran out."""
        deadline = time.monotonic() + PERMALINK_BUDGET_S
        links: list[str | None] = []
        for item in asked[: Keys.RECENT_KEPT]:
            link = None
            if time.monotonic() < deadline:
                try:
                    found = self._client.chat_getPermalink(channel=item.channel, message_ts=item.ts).get("permalink")
                    link = found if isinstance(found, str) and found.startswith("https://") else None
                except SlackApiError as exc:  # e.g. the message was deleted, or the bot left the channel
                    log.info("no link to a reply on the App Home: Slack said %s", exc.response.get("error"))
                except (SlackClientError, OSError) as exc:
                    log.info("no link to a reply on the App Home: %s", type(exc).__name__)
            links.append(link)
        return links


def _status(outcome: Outcome | None, age_s: float) -> str:
    if outcome is not None:
        return STATUS[outcome]
    return EXPIRED if age_s > Keys.REPLY_TTL_S else WAITING
