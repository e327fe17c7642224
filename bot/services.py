"""The long-lived objects the listeners share, handed to them through Bolt's context.

Listeners keep the starter template's `register(app)` shape, so they cannot close over
these; a global middleware puts one `Services` in every request's context instead.
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

from bot.documents import DocumentReader, ThreadDocuments
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


@dataclass
class Services:
    settings: BotSettings
    client: WebClient
    queue: JobQueue
    reader: DocumentReader
    threads: ThreadDocuments
    placeholders: Placeholders
    intake: Intake

    @classmethod
    def create(cls, settings: BotSettings, client: WebClient | None = None) -> "Services":
        client = client or web_client(settings)
        queue = JobQueue.from_url(settings.redis_url, namespace=settings.namespace)
        reader = DocumentReader(client, settings)
        threads = ThreadDocuments(reader, client, queue.redis, settings.namespace, settings.doc_cache_ttl_s)
        placeholders = Placeholders(queue.redis, settings.namespace)
        return cls(settings, client, queue, reader, threads, placeholders,
                   Intake(queue, client, threads, placeholders))

    def __deepcopy__(self, memo: dict[int, Any]) -> "Services":
        # Bolt deep-copies the context for lazy listeners; these objects are thread-safe
        # and process-wide (connection pools), so the copy must share them.
        return self

    def close(self) -> None:
        self.queue.redis.close()


def services(context: BoltContext) -> Services:
    """The Services of this request (put there by the middleware in `bot.app`)."""
    return context[CONTEXT_KEY]
