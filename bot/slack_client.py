"""The bot's Web API clients: where they point, how they retry, whose token they carry, and the
count of every call they make.

Every Slack call of the bot goes through a `SlackClient` (listeners' reads and forms, the reply
flow, live progress, the App Home, file lookups, the start-up check, Bolt's OAuth exchange), so
`qa_bot_slack_calls_total` sees each attempt once: the reply flow's own retries and slack_sdk's
alike. File downloads and response_url posts, which are not Web API calls, are counted by their
callers under the pseudo-methods files.download and response_url.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.metrics import BotMetrics
from bot.outcome.replies import call_result
from bot.settings import BotSettings
from bot.workspaces import TokenSource


class SlackClient(WebClient):
    """The bot's Web API client: every attempt of every call is counted
    (`qa_bot_slack_calls_total`, one attempt each, whatever retry policy repeats it), and with
    many workspaces the token is read at each call from `source` (the workspace in scope's,
    `bot.workspaces.acting_for`).

    The count is taken where slack_sdk makes one HTTP request (`_perform_urllib_http_request_internal`,
    below its retry loop), the one place every method, upload step and retry passes through;
    a private method, so `tests/bot/test_metrics.py` checks it still sees every attempt."""

    def __init__(self, metrics: BotMetrics, source: TokenSource | None = None, **kwargs: Any) -> None:
        self._metrics = metrics
        self._source = source
        super().__init__(**kwargs)

    @property
    def token(self) -> str | None:
        return self._source.token() if self._source is not None else self._own_token

    @token.setter
    def token(self, value: str | None) -> None:
        if value is not None and self._source is not None:
            raise AttributeError("this client's token comes from the workspace in scope")
        self._own_token = value

    def count(self, method: str, result: str) -> None:
        """Count one attempt of a Slack call that does not go through the Web API (a file download)."""
        self._metrics.slack_calls.labels(method, result).inc()

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        method = url.rsplit("/", 1)[-1].split("?", 1)[0]
        try:
            response: dict[str, Any] = super()._perform_urllib_http_request_internal(url, req)
        except HTTPError as exc:  # Slack's 429 and 5xx: its body is read by slack_sdk afterwards, not here
            self.count(method, "rate_limited" if exc.code == 429 else f"http_{exc.code}")
            raise
        except Exception as exc:
            self.count(method, call_result(exc))
            raise
        self.count(method, _result_of(response))
        return response


def _result_of(response: dict[str, Any]) -> str:
    """ok, or the error a 200 response's body names (Slack answers most refusals with HTTP 200)."""
    body = response.get("body")
    if isinstance(body, str) and body.startswith("{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return "unreadable_response"
        return "ok" if parsed.get("ok") else str(parsed.get("error") or "not_ok")[:60]
    return "ok"  # a binary answer (admin.analytics.getFile): no error body


class CountedRetries(RetryHandler):
    """slack_sdk's retry handler `inner`, counting each repetition it asks for (`qa_bot_slack_retries_total`)."""

    def __init__(self, inner: RetryHandler, metrics: BotMetrics) -> None:
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self._inner = inner
        self._metrics = metrics

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return self._inner._can_retry(state=state, request=request, response=response, error=error)

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None, error: Exception | None = None) -> None:
        self._metrics.slack_retries.labels(request.url.rsplit("/", 1)[-1]).inc()
        self._inner.prepare_for_next_attempt(state=state, request=request, response=response, error=error)

    def __deepcopy__(self, memo: dict[int, Any]) -> CountedRetries:
        # Bolt deep-copies each request's context for lazy listeners, its client's handlers with it;
        # the copy must count into the same (process-wide, lock-guarded) metrics.
        return self


def web_client(settings: BotSettings, metrics: BotMetrics, *, retries: bool = True, timeout: int = 15,
               installations: TokenSource | None = None) -> SlackClient:
    """The Web API client: base URL from SLACK_API_URL, every attempt counted in `metrics`. With
    `retries`, slack_sdk's own retry handlers for connection errors, rate limits (429, honouring
    Retry-After) and 5xx, for the idempotent reads of listeners; the reply flow has its own, longer
    policy (`bot.outcome.replies`). With `installations` (many workspaces) its token is the workspace
    in scope's (`bot.workspaces`), else SLACK_BOT_TOKEN."""
    handlers: list[RetryHandler] = [
        CountedRetries(ConnectionErrorRetryHandler(max_retry_count=2), metrics),
        CountedRetries(RateLimitErrorRetryHandler(max_retry_count=3), metrics),
        CountedRetries(ServerErrorRetryHandler(max_retry_count=2), metrics),
    ] if retries else []
    return SlackClient(metrics, installations, token=None if installations is not None else settings.bot_token,
                       base_url=settings.api_url, timeout=timeout, retry_handlers=handlers)
