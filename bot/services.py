"""The long-lived objects of one bot process: what listeners use, and the reply flow.

Listeners keep the starter template's `register(app)` shape, so they cannot close over
these; a global middleware puts one `Services` in every request's context instead.
Listeners use `client` (forms), `intake`, `documents`, `followups` (an answer's buttons) and
`home` (the App Home); `flow` is for the process's result consumer, sweeper and progress reader
(`bot.app.start`), so no listener reaches Redis or a key name.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext

from bot.intake.documents import Documents
from bot.intake.files import FileReader
from bot.intake.submit import Intake
from bot.metrics import BotMetrics
from bot.outcome.replies import REPLY_TIMEOUT_S, Lanes, Replier
from bot.outcome.tracking import Outcomes, StatusEdits, Tracker
from bot.settings import BotSettings
from bot.slack_client import SlackClient, web_client
from bot.ui.answers import Answers, Recent
from bot.ui.followups import FollowUps
from bot.ui.home import Home
from bot.workspaces import Installations, Workspace
from explain_core.queue import JobQueue
from explain_core.queue.feedback import Votes
from explain_core.queue.purge import forget_org, forget_team

CONTEXT_KEY = "qa_services"


@dataclass(frozen=True)
class ReplyFlow:
    """What posts, tracks and settles replies; one per process, shared by the intake, the
    result consumer (`bot.outcome.delivery`) and the sweeper (`bot.outcome.sweeper`). `close()` stops their
    retries and lanes."""

    queue: JobQueue
    settings: BotSettings
    replier: Replier
    tracker: Tracker
    outcomes: Outcomes
    lanes: Lanes
    stopping: threading.Event
    edits: StatusEdits
    answers: Answers
    metrics: BotMetrics
    installations: Installations | None = None  # many workspaces; None: SLACK_BOT_TOKEN's one

    @classmethod
    def create(cls, settings: BotSettings, queue: JobQueue, metrics: BotMetrics,
               installations: Installations | None = None) -> ReplyFlow:
        stopping = threading.Event()
        client = web_client(settings, metrics, retries=False, timeout=REPLY_TIMEOUT_S, installations=installations)
        return cls(queue=queue, settings=settings, installations=installations,
                   replier=Replier(client, settings.api_url, settings.slack_retry_s, stopping, metrics),
                   tracker=Tracker(queue.redis, queue.keys), outcomes=Outcomes(queue.redis, queue.keys, metrics),
                   lanes=Lanes(settings.delivery_threads), stopping=stopping,
                   edits=StatusEdits(queue.redis, queue.keys),
                   answers=Answers(queue.redis, queue.keys, settings.doc_cache_ttl_s), metrics=metrics)

    def serves(self, workspace: Workspace) -> bool:
        """Whether replies to `workspace` may still be posted: False once it uninstalled the app
        (or revoked its tokens), when its questions are dropped without a word."""
        return self.installations is None or self.installations.installed(workspace)

    def close(self) -> None:
        self.stopping.set()
        self.lanes.close()


@dataclass(frozen=True)
class Services:
    """`client` for what listeners ask Slack directly (opening forms), `intake` to queue a
    question and tell the user, `documents` for the passages of threads, files and the
    message shortcut, `followups` for the answers' buttons, `home` for the App Home tab; `flow`
    for the process's consumer and sweeper."""

    client: SlackClient
    intake: Intake
    documents: Documents
    followups: FollowUps
    flow: ReplyFlow
    home: Home

    @classmethod
    def create(cls, settings: BotSettings, queue: JobQueue, metrics: BotMetrics | None = None,
               installations: Installations | None = None) -> Services:
        """`metrics`: the process's (`bot.metrics.process_metrics`, what its port serves); a test's own by default."""
        metrics = metrics or BotMetrics()
        client = web_client(settings, metrics, installations=installations)
        documents = Documents(FileReader(client, settings), client, queue.redis, queue.keys, settings.doc_cache_ttl_s)
        flow = ReplyFlow.create(settings, queue, metrics, installations)
        recent = Recent(queue.redis, queue.keys, settings.doc_cache_ttl_s)
        intake = Intake(queue, flow.replier, flow.tracker, flow.outcomes, documents, recent, settings.reply_deadline_s,
                        flow.metrics)
        followups = FollowUps(queue, flow.answers, Votes(queue.redis, queue.keys), documents, intake, flow.replier,
                              settings.doc_cache_ttl_s, settings.reply_deadline_s)
        return cls(client, intake, documents, followups, flow, home=Home(client, queue, recent, flow.outcomes))

    def forget(self, workspace: Workspace) -> Counter[str]:
        """`workspace` uninstalled the app (or revoked its bot token): delete its installation, then
        everything kept of its team in Redis (`explain_core.queue.purge`); its questions still in
        line are dropped unposted by the delivery and the sweeper (`ReplyFlow.serves`)."""
        if self.flow.installations is not None:
            self.flow.installations.forget(workspace)
        redis_client, keys = self.flow.queue.redis, self.flow.queue.keys
        if workspace.is_enterprise_install and workspace.enterprise_id:  # org-wide: every team of the org that asked
            return forget_org(redis_client, keys, workspace.enterprise_id)
        return forget_team(redis_client, keys, workspace.team_id) if workspace.team_id else Counter()

    def __deepcopy__(self, memo: dict[int, Any]) -> Services:
        # Bolt deep-copies the context for lazy listeners; these objects are thread-safe
        # and process-wide (connection pools), so the copy must share them.
        return self


def services(context: BoltContext) -> Services:
    """The Services of this request (put there by the middleware in `bot.app`)."""
    return context[CONTEXT_KEY]
