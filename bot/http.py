"""HTTP mode: Slack's requests through an asyncio server, each judged by its headers before
a byte of its body is read.

Under gunicorn's threads a request held a thread from its first byte to its last, so eight
clients trickling bodies made the bot unreachable, and every body was read whole, of any
size, before its signature was checked (issue 10). Here:

- Hypercorn (asyncio) holds connections, not threads: a slow client costs a few KB and no
  thread. Its `keep_alive_timeout` is a deadline for a request's headers, counted from the
  connection's start (or the previous response) and not renewed by bytes that trickle in.
  uvicorn has no such deadline (encode/uvicorn#157), which is why it is not used here.
- `SlackFront` (ASGI) refuses from the headers alone anything that cannot be Slack's request:
  not a POST to /slack/events, no Content-Length or one over the cap (413), not Slack's
  content type, no `v0=` signature, a timestamp that is not a number within five minutes
  (401). Then it reads the body under a deadline (408) and a byte budget shared by every
  connection (503), checks the signature with slack_sdk's `SignatureVerifier`, and only then
  hands the request to the sync Bolt app on a small thread pool, so the event loop never
  waits for Bolt. Bolt's own signature check is off (`bot.app.build_app`): it logs a forged
  body whole, and this front has checked before Bolt sees anything.
- With many workspaces (`bot.installs`), Bolt's install flow answers GETs on its two paths
  (`/slack/install`, `/slack/oauth_redirect`): only a GET without a body and with a short
  query gets there, served on the same pool (it asks the database and Slack).
- No body is ever logged: a refusal is one line with its status and reason.

Several serving processes (`WEB_CONCURRENCY`) are Hypercorn's workers; each builds its own
app and result consumer through `bot.app.http_app_from_env`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypercorn.config import Config
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.asgi.http_response import AsgiHttpResponse
from slack_sdk.signature import SignatureVerifier

from bot.settings import BotSettings

log = logging.getLogger("bot.http")

EVENTS_PATH = "/slack/events"
SLACK_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "application/json"})
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
MAX_CLOCK_SKEW_S = 5 * 60  # Slack's replay window, as slack_sdk's SignatureVerifier checks it
# Bolt's part of a request is CPU only (acks; the work is lazy, on Bolt's listener pool), so a few
# threads keep up with any rate a workspace sends; requests wait here, never in the event loop.
DISPATCH_THREADS = 8
# Slack's OAuth redirect carries a code and a state (and an error, when the install was cancelled).
MAX_QUERY_BYTES = 2048

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(Exception):
    """A request answered with a 4xx/5xx and a short reason, never with its content."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SlackFront:
    """The ASGI app of HTTP mode: admission, a bounded body, the signature, then Bolt."""

    def __init__(self, app: App, settings: BotSettings) -> None:
        if not settings.signing_secret:
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
        self._app = app
        self._verifier = SignatureVerifier(settings.signing_secret)
        self._max_body = settings.http_max_body_bytes
        self._timeout_s = settings.http_timeout_s
        self._budget = settings.http_buffer_bytes
        self._buffered = 0  # body bytes held by requests in progress (one event loop: no lock)
        self._pool = ThreadPoolExecutor(max_workers=DISPATCH_THREADS, thread_name_prefix="http")
        self._oauth = app.oauth_flow  # many workspaces: Bolt's install flow, on its two GET paths
        self._oauth_paths = frozenset({self._oauth.install_path, self._oauth.redirect_uri_path}) \
            if self._oauth is not None else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # refused before the handshake: 403

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in self._oauth_paths:
            await _respond(send, await self._install_page(scope, _headers(scope)))
            return
        body = bytearray()  # counted in the shared budget until the request is answered
        try:
            headers = _headers(scope)
            length = self._admit(scope["method"], scope["path"], headers)
            await self._read_body(receive, length, body)
            response = await self._dispatch(body, headers, scope.get("query_string", b""))
        except Refused as refusal:
            client = scope.get("client") or ("?", 0)
            log.info("refused a request from %s: %d %s", client[0], refusal.status, refusal.reason)
            response = BoltResponse(status=refusal.status, body=refusal.reason)
        finally:
            self._buffered -= len(body)
        await _respond(send, response)

    async def _install_page(self, scope: Scope, headers: Mapping[str, str]) -> BoltResponse:
        """A page of Bolt's install flow: a GET with no body and a short query (Slack's redirect
        carries a code and a state), served on the pool since it asks the database and Slack."""
        assert self._oauth is not None
        try:
            if scope["method"] != "GET":
                raise Refused(405, "only GET")
            if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
                raise Refused(413, "no body expected")
            query: bytes = scope.get("query_string", b"")
            if len(query) > MAX_QUERY_BYTES:
                raise Refused(414, f"a query longer than {MAX_QUERY_BYTES} bytes")
        except Refused as refusal:
            log.info("refused an install page request: %d %s", refusal.status, refusal.reason)
            return BoltResponse(status=refusal.status, body=refusal.reason)
        request = BoltRequest(body="", query=query.decode("latin-1"), headers={**headers})
        flow = self._oauth
        handle = flow.handle_installation if scope["path"] == flow.install_path else flow.handle_callback
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, handle, request)
        except Exception as exc:  # the database or Slack out of reach: the installer may try again
            log.error("the install page failed: %s", type(exc).__name__)
            return BoltResponse(status=503, body="The install is unavailable right now. Please try again later.")

    def _admit(self, method: str, path: str, headers: Mapping[str, str]) -> int:
        """The body's length, if the headers can be Slack's; `Refused` otherwise."""
        if path != EVENTS_PATH:
            raise Refused(404, "not found")
        if method != "POST":
            raise Refused(405, "only POST")
        length = headers.get("content-length")
        if length is None or "transfer-encoding" in headers:
            raise Refused(411, "a Content-Length is required")
        if not (length.isascii() and length.isdigit()) or len(length) > 12 or int(length) > self._max_body:
            raise Refused(413, f"larger than {self._max_body} bytes")
        if headers.get("content-type", "").partition(";")[0].strip().lower() not in SLACK_CONTENT_TYPES:
            raise Refused(415, "not a Slack content type")
        stamp = headers.get("x-slack-request-timestamp", "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) \
                or abs(time.time() - int(stamp)) > MAX_CLOCK_SKEW_S:
            raise Refused(401, "missing or stale X-Slack-Request-Timestamp")
        if not SIGNATURE.fullmatch(headers.get("x-slack-signature", "")):
            raise Refused(401, "missing or malformed X-Slack-Signature")
        return int(length)

    async def _read_body(self, receive: Receive, length: int, body: bytearray) -> None:
        """Append the body to `body`, within the deadline and the shared budget."""
        try:
            async with asyncio.timeout(self._timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        raise Refused(400, "the client went away")
                    chunk = message.get("body", b"")
                    if len(body) + len(chunk) > length:
                        raise Refused(400, "a body longer than its Content-Length")
                    if self._buffered + len(chunk) > self._budget:
                        raise Refused(503, "too many request bodies in progress")
                    self._buffered += len(chunk)
                    body += chunk
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            raise Refused(408, f"the body did not arrive within {self._timeout_s:g} s") from None

    async def _dispatch(self, body: bytearray, headers: dict[str, str], query: bytes) -> BoltResponse:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "the body is not UTF-8") from None
        if not self._verifier.is_valid(text, headers["x-slack-request-timestamp"], headers["x-slack-signature"]):
            raise Refused(401, "invalid signature")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._bolt, text, headers, query.decode("latin-1"))

    def _bolt(self, text: str, headers: dict[str, str], query: str) -> BoltResponse:
        """Bolt's part, on the pool: parse, then the listeners' acks (their work is lazy)."""
        bolt_headers: dict[str, str | Sequence[str]] = {**headers}
        try:
            request = BoltRequest(body=text, query=query, headers=bolt_headers)
        except (ValueError, TypeError, AttributeError):  # JSON that does not parse, or is not an object
            return BoltResponse(status=400, body="malformed body")
        return self._app.dispatch(request)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(send: Send, response: BoltResponse) -> None:
    message = AsgiHttpResponse(status=response.status, headers=response.headers, body=response.body)
    await send(message.get_response_start())
    await send(message.get_response_body())


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-case names; latin-1 values (what HTTP allows, so any byte decodes)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def server_config(settings: BotSettings) -> Config:
    """Hypercorn's configuration for `settings`: where to listen, the headers' deadline, workers."""
    config = Config()
    host = f"[{settings.bind_host}]" if ":" in settings.bind_host else settings.bind_host  # IPv6
    config.bind = [f"{host}:{settings.port}"]
    config.keep_alive_timeout = settings.http_timeout_s  # also the deadline for a request's headers
    config.workers = settings.web_concurrency
    config.application_path = "bot.app:http_app_from_env()"  # built in each worker, after it starts
    config.errorlog = logging.getLogger("hypercorn.error")  # through this process's logging set-up
    config.accesslog = None
    config.include_server_header = False
    return config


def serve(settings: BotSettings) -> None:
    """Serve until SIGTERM/SIGINT: in this process, or in `WEB_CONCURRENCY` worker processes."""
    from hypercorn.run import run

    config = server_config(settings)
    if config.workers == 1:
        config.workers = 0  # Hypercorn's "no worker processes": serve here, no supervisor
    run(config)
