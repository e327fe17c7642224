"""The long-lived objects the listeners share, handed to them through Bolt's context.

Listeners keep the starter template's `register(app)` shape, so they cannot close over
these; a global middleware puts one `Services` in every request's context instead. It
holds only what listeners use: the queue, Redis and the result consumer stay with whoever
started the process (`bot.app.start`), so no listener reaches Redis or a key name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.documents import Documents
from bot.files import FileReader
from bot.intake import Intake, Placeholders
from bot.settings import BotSettings
from explain_core.queue import JobQueue

CONTEXT_KEY = "qa_services"


def web_client(settings: BotSettings) -> WebClient:
    """The Web API client: base URL from SLACK_API_URL, and slack_sdk's own retry handlers
    for connection errors, rate limits (429, honouring Retry-After) and 5xx."""
    return WebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


@dataclass(frozen=True)
class Services:
    """`client` for what listeners ask Slack directly (opening forms), `intake` to queue a
    question and tell the user, `documents` for the passages of threads, files and the
    message shortcut."""

    client: WebClient
    intake: Intake
    documents: Documents

    @classmethod
    def create(cls, settings: BotSettings, queue: JobQueue) -> Services:
        client = web_client(settings)
        documents = Documents(FileReader(client, settings), client, queue.redis, queue.keys, settings.doc_cache_ttl_s)
        intake = Intake(queue, client, documents, Placeholders(queue.redis, queue.keys))
        return cls(client, intake, documents)

    def __deepcopy__(self, memo: dict[int, Any]) -> Services:
        # Bolt deep-copies the context for lazy listeners; these objects are thread-safe
        # and process-wide (connection pools), so the copy must share them.
        return self


def services(context: BoltContext) -> Services:
    """The Services of this request (put there by the middleware in `bot.app`)."""
    return context[CONTEXT_KEY]
