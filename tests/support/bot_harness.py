"""The bot in HTTP mode on loopback, driven the way Slack drives it: signed HTTP requests.

`BotUnderTest` builds the real Bolt app (`bot.app.build_app`) with its real services
(Redis, the Web API client pointed at `SlackFake`) and serves the same WSGI callable
gunicorn serves (`bot.app.wsgi_app`) from a threaded wsgiref server. Requests carry
Slack's signature scheme (v0, HMAC-SHA256 over "v0:timestamp:body"), computed with
slack_sdk's own SignatureVerifier. Unlike `bot.app.start`, the result consumer
(`Delivery`) runs only when a test asks, so tests can also drive consumers of their own.
"""
from __future__ import annotations

import itertools
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from bot.app import build_app, wsgi_app
from bot.delivery import Delivery
from bot.intake import Placeholders
from bot.services import Services
from bot.settings import BotSettings
from explain_core.queue import Job, JobQueue
from tests.support.redis_server import RedisServer
from tests.support.slack_fake import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackFake

ROOT = Path(__file__).resolve().parents[2]  # the repository
SIGNING_SECRET = "test-signing-secret"
USER = "UASKER"
_ids = itertools.count(1)


def unique(prefix: str) -> str:
    """An id no other test uses (channels, triggers), so tests can share one fake and one Redis."""
    return f"{prefix}{next(_ids):05d}{int(time.time() * 1000) % 100000:05d}"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


@dataclass
class Reply:
    status: int
    body: str
    elapsed_s: float
    response_id: str | None = None  # a slash command's response_url id
    trigger_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def settings_for(fake: SlackFake, redis_url: str, namespace: str, **overrides: Any) -> BotSettings:
    return BotSettings(bot_token=BOT_TOKEN, mode="http", signing_secret=SIGNING_SECRET, api_url=fake.api_url,
                       redis_url=redis_url, namespace=namespace, **overrides)


class BotUnderTest:
    """One bot: Bolt app + WSGI server on a free port + (optionally) its result consumer."""

    def __init__(self, fake: SlackFake, settings: BotSettings) -> None:
        self.fake = fake
        self.settings = settings
        self.queue = JobQueue.from_url(settings.redis_url, namespace=settings.namespace)
        self.services = Services.create(settings, self.queue)
        self.placeholders = Placeholders(self.queue.redis, self.queue.keys)
        self.app = build_app(settings, self.services)
        self._server = make_server("127.0.0.1", 0, wsgi_app(self.app), server_class=_ThreadingWSGIServer,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/slack/events"
        self.http = requests.Session()
        self.delivery: Delivery | None = None

    def start_delivery(self) -> Delivery:
        self.delivery = Delivery(self.queue, self.services.client, self.settings).start()
        return self.delivery

    def close(self) -> None:
        if self.delivery is not None:
            self.delivery.stop()
        self._server.shutdown()
        self._server.server_close()
        self.http.close()
        self.queue.redis.close()

    # -- requests ---------------------------------------------------------------------
    def post(self, body: str, content_type: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
        all_headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
                       "X-Slack-Signature": signature, **(headers or {})}
        started = time.perf_counter()
        response = self.http.post(self.url, data=body.encode(), headers=all_headers, timeout=30)
        return Reply(response.status_code, response.text, time.perf_counter() - started)

    def command(self, text: str, *, channel: str, user: str = USER, trigger_id: str | None = None,
                **kwargs: Any) -> Reply:
        response_id = unique("r")
        trigger_id = trigger_id or unique("trig.")
        form = {"token": "legacy", "team_id": TEAM_ID, "team_domain": "test", "channel_id": channel,
                "channel_name": "general", "user_id": user, "user_name": "asker", "command": "/explain",
                "text": text, "api_app_id": "A0TEST", "trigger_id": trigger_id,
                "response_url": f"{self.fake.url}/response/{response_id}"}
        reply = self.post(urlencode(form), "application/x-www-form-urlencoded", **kwargs)
        reply.response_id, reply.trigger_id = response_id, trigger_id
        return reply

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> Reply:
        envelope = {"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0TEST", "type": "event_callback",
                    "event_id": event_id or unique("Ev"), "event_time": int(time.time()),
                    "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
                    "event": event}
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else None
        return self.post(json.dumps(envelope), "application/json", headers=headers)

    def interactive(self, payload: dict[str, Any]) -> Reply:
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def mention(self, channel: str, text: str, *, thread_ts: str | None = None, files: list[dict] | None = None,
                user: str = USER) -> dict[str, Any]:
        """Post a message mentioning the bot into the fake, and send its app_mention event."""
        message = self.fake.add_message(channel, {"user": user, "text": f"<@{BOT_USER_ID}> {text}",
                                                  "thread_ts": thread_ts, **({"files": files} if files else {})})
        event = {"type": "app_mention", "channel": channel, "user": user, "text": message["text"],
                 "ts": message["ts"], "event_ts": message["ts"], **({"thread_ts": thread_ts} if thread_ts else {}),
                 **({"files": files} if files else {})}
        reply = self.event(event)
        assert reply.status == 200, reply
        return event

    def direct_message(self, channel: str, text: str, *, thread_ts: str | None = None,
                       files: list[dict] | None = None, user: str = USER) -> dict[str, Any]:
        message = self.fake.add_message(channel, {"user": user, "text": text, "thread_ts": thread_ts,
                                                  **({"files": files} if files else {})})
        event = {"type": "message", "channel": channel, "channel_type": "im", "user": user, "text": text,
                 "ts": message["ts"], "event_ts": message["ts"], **({"thread_ts": thread_ts} if thread_ts else {}),
                 **({"files": files, "subtype": "file_share"} if files else {})}
        reply = self.event(event)
        assert reply.status == 200, reply
        return event

    def view_submission(self, view_id: str, view: dict[str, Any], values: dict[str, str],
                        user: str = USER) -> Reply:
        """Submit a modal that the bot opened (`view` as recorded by views.open)."""
        state = {block: {"value": {"type": "plain_text_input", "value": value}} for block, value in values.items()}
        payload = {"type": "view_submission", "team": {"id": TEAM_ID, "domain": "test"},
                   "user": {"id": user, "team_id": TEAM_ID}, "api_app_id": "A0TEST",
                   "trigger_id": unique("trig."),
                   "view": {**view, "id": view_id, "team_id": TEAM_ID, "state": {"values": state}}}
        return self.interactive(payload)

    def message_shortcut(self, channel: str, message: dict[str, Any], user: str = USER) -> Reply:
        trigger_id = unique("trig.")
        payload = {"type": "message_action", "callback_id": "ask_about_message", "trigger_id": trigger_id,
                   "team": {"id": TEAM_ID, "domain": "test"}, "channel": {"id": channel, "name": "general"},
                   "user": {"id": user, "name": "asker"}, "message_ts": message["ts"], "message": message,
                   "response_url": f"{self.fake.url}/response/{unique('r')}"}
        reply = self.interactive(payload)
        reply.trigger_id = trigger_id
        return reply

    # -- what happened ----------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job not yet finished, read with XRANGE so no worker's delivery is disturbed."""
        entries = self.queue.redis.xrange(self.queue.keys.jobs)
        return [Job.from_json(fields["job"]) for _id, fields in entries]

    def job_passage(self, job: Job) -> str | None:
        return self.queue.passages([job])[0]

    def opened_view(self, trigger_id: str) -> tuple[str, dict[str, Any]]:
        """(view id, view) of the modal opened with `trigger_id` (waits for views.open)."""
        call = self.fake.wait_for(lambda: self.fake.calls("views.open", trigger_id=trigger_id),
                                  what=f"views.open for {trigger_id}")[0]
        return unique("V"), call.args["view"]

    def ephemerals(self, channel: str) -> list[dict[str, Any]]:
        return [c.args for c in self.fake.calls("chat.postEphemeral", channel=channel)]

    def wait_ephemeral(self, channel: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.fake.wait_for(lambda: self.ephemerals(channel), timeout, f"an ephemeral in {channel}")[0]

    def wait_response(self, reply: Reply, timeout: float = 15.0) -> dict[str, Any]:
        """The first message the bot sent to the response_url of the command that got `reply`."""
        assert reply.response_id is not None
        return self.fake.wait_for(lambda: self.fake.responses(reply.response_id), timeout,
                                  "a response_url post")[0]


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition", interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- fixtures, imported by the tests/bot modules --------------------------------------------
@pytest.fixture(scope="module")
def slack() -> Iterator[SlackFake]:
    fake = SlackFake().start()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    """One private redis-server for a module (tests keep apart by namespace or channel)."""
    server = RedisServer(appendonly=False).start()
    yield server
    server.close()


def make_pdf(pages: list[str]) -> bytes:
    """A real PDF with a text layer: one page per string (Helvetica, one line per page).

    An empty string makes a page with no text at all, i.e. what a scan looks like to a
    text extractor. Written by hand (pypdf cannot typeset), with a correct xref table.
    """
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: pages (filled in below)
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for text in pages:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1") if text else b""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (content_id, font_id))
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


