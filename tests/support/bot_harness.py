"""The bot in HTTP mode on loopback, driven the way Slack drives it: signed HTTP requests.

`BotUnderTest` builds the real Bolt app (`bot.app.build_app`) with its real services
(Redis, the Web API client pointed at `SlackFake`) and serves it as production does: behind
`bot.http.SlackFront`, under Hypercorn configured by `bot.http.server_config`, here on an event
loop in a thread (`ServerThread`) instead of a process of its own. Requests carry
Slack's signature scheme (v0, HMAC-SHA256 over "v0:timestamp:body"), computed with
slack_sdk's own SignatureVerifier. Unlike `bot.app.start`, the result consumer
(`Delivery`) and the sweeper run only when a test asks, so tests can also drive their own.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import hypercorn.asyncio
import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from bot.app import build_app, open_installations, open_queue
from bot.http import SlackFront, server_config
from bot.metrics import BotMetrics
from bot.outcome.delivery import Delivery
from bot.outcome.progress import LiveProgress
from bot.outcome.sweeper import Sweeper
from bot.services import Services
from bot.settings import BotSettings
from explain_core.queue import Job, JobQueue, RedisTarget
from tests.support import ROOT
from tests.support.redis_server import RedisServer, free_port
from tests.support.slack_fake import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackFake

SIGNING_SECRET = "test-signing-secret"
USER = "UASKER"
_ids = itertools.count(1)


def unique(prefix: str) -> str:
    """An id no other test uses (channels, triggers), so tests can share one fake and one Redis."""
    return f"{prefix}{next(_ids):05d}{int(time.time() * 1000) % 100000:05d}"


class ServerThread:
    """`front` under Hypercorn with the production configuration for `settings`, except that it
    listens on a loopback port the OS picks; the server's event loop runs in a daemon thread."""

    def __init__(self, front: SlackFront, settings: BotSettings) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/slack/events"
        config = server_config(settings)
        config.bind = [f"fd://{listener.detach()}"]  # Hypercorn owns the socket from here
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(started.set)
            self._loop.run_until_complete(hypercorn.asyncio.serve(front, config, shutdown_trigger=self._stop.wait))
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"hypercorn-{self.port}", daemon=True)
        self._thread.start()
        started.wait(10)

    def close(self) -> None:
        """Stop serving (open connections get Hypercorn's graceful timeout, 3 s at most)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15)


@dataclass
class Reply:
    status: int
    body: str
    elapsed_s: float
    response_id: str | None = None  # a slash command's response_url id
    trigger_id: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def signed_headers(body: str, content_type: str, *, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: its type, the time and the v0 signature over both."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def settings_for(fake: SlackFake, redis: str | RedisTarget, namespace: str, **overrides: Any) -> BotSettings:
    """The bot's settings for tests: `redis` is a URL, or a target (e.g. through Sentinel)."""
    return BotSettings(bot_token=BOT_TOKEN, mode="http", signing_secret=SIGNING_SECRET, api_url=fake.api_url,
                       redis=redis if isinstance(redis, RedisTarget) else RedisTarget(redis), namespace=namespace,
                       **overrides)


# -- what Slack sends, the same in both modes: a signed HTTP body, or a Socket Mode envelope's payload --
def command_payload(fake: SlackFake, text: str, *, channel: str, user: str = USER,
                    trigger_id: str | None = None) -> dict[str, str]:
    """`/explain text`: its response_url is on the fake, `{fake.url}/response/<id>`."""
    return {"token": "legacy", "team_id": TEAM_ID, "team_domain": "test", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": "asker", "command": "/explain",
            "text": text, "api_app_id": "A0TEST", "trigger_id": trigger_id or unique("trig."),
            "response_url": f"{fake.url}/response/{unique('r')}"}


def event_callback(event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    return {"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0TEST", "type": "event_callback",
            "event_id": event_id or unique("Ev"), "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}], "event": event}


def mention_event(fake: SlackFake, channel: str, text: str, *, thread_ts: str | None = None,
                  files: list[dict] | None = None, user: str = USER) -> dict[str, Any]:
    """Post a message mentioning the bot into the fake; return its app_mention event."""
    message = fake.add_message(channel, {"user": user, "text": f"<@{BOT_USER_ID}> {text}", "thread_ts": thread_ts,
                                         **({"files": files} if files else {})})
    return {"type": "app_mention", "channel": channel, "user": user, "text": message["text"],
            "ts": message["ts"], "event_ts": message["ts"], **({"thread_ts": thread_ts} if thread_ts else {}),
            **({"files": files} if files else {})}


def direct_message_event(fake: SlackFake, channel: str, text: str, *, thread_ts: str | None = None,
                         files: list[dict] | None = None, user: str = USER) -> dict[str, Any]:
    """Post a person's direct message to the bot into the fake; return its message.im event."""
    message = fake.add_message(channel, {"user": user, "text": text, "thread_ts": thread_ts,
                                         **({"files": files} if files else {})})
    return {"type": "message", "channel": channel, "channel_type": "im", "user": user, "text": text,
            "ts": message["ts"], "event_ts": message["ts"], **({"thread_ts": thread_ts} if thread_ts else {}),
            **({"files": files, "subtype": "file_share"} if files else {})}


def message_shortcut_payload(fake: SlackFake, channel: str, message: dict[str, Any],
                             user: str = USER) -> dict[str, Any]:
    return {"type": "message_action", "callback_id": "ask_about_message", "trigger_id": unique("trig."),
            "team": {"id": TEAM_ID, "domain": "test"}, "channel": {"id": channel, "name": "general"},
            "user": {"id": user, "name": "asker"}, "message_ts": message["ts"], "message": message,
            "response_url": f"{fake.url}/response/{unique('r')}"}


def view_submission_payload(view_id: str, view: dict[str, Any], values: dict[str, str],
                            user: str = USER) -> dict[str, Any]:
    """The submission of a modal the bot opened (`view` as recorded by views.open)."""
    state = {block: {"value": {"type": "plain_text_input", "value": value}} for block, value in values.items()}
    return {"type": "view_submission", "team": {"id": TEAM_ID, "domain": "test"},
            "user": {"id": user, "team_id": TEAM_ID}, "api_app_id": "A0TEST", "trigger_id": unique("trig."),
            "view": {**view, "id": view_id, "team_id": TEAM_ID, "state": {"values": state}}}


def block_action_payload(fake: SlackFake, channel: str, message: dict[str, Any], action_id: str, value: str,
                         user: str = USER) -> dict[str, Any]:
    """A click on an element of the bot's `message` (as the fake stores it): a button's or feedback
    button's `value`, or a static_select's option of that value."""
    element = next((e for block in message.get("blocks") or [] for e in block.get("elements") or []
                    if isinstance(e, dict) and e.get("action_id") == action_id), None)
    assert element is not None, f"no element {action_id} in the message"
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "type": element["type"],
                              "action_ts": f"{time.time():.6f}"}
    if element["type"] == "static_select":
        option = next(o for o in element["options"] if o["value"] == value)
        action["selected_option"] = option
    else:
        action["value"] = value
    return {"type": "block_actions", "team": {"id": TEAM_ID, "domain": "test"},
            "user": {"id": user, "team_id": TEAM_ID}, "api_app_id": "A0TEST", "trigger_id": unique("trig."),
            "channel": {"id": channel, "name": "general"}, "container": {"type": "message",
                                                                          "message_ts": message["ts"]},
            "message": message, "response_url": f"{fake.url}/response/{unique('r')}", "actions": [action]}


def app_home_opened_event(user: str = USER) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
            "event_ts": f"{time.time():.6f}"}


def opened_view(fake: SlackFake, trigger_id: str) -> tuple[str, dict[str, Any]]:
    """(view id, view) of the modal opened with `trigger_id` (waits for views.open)."""
    call = fake.wait_for(lambda: fake.calls("views.open", trigger_id=trigger_id),
                         what=f"views.open for {trigger_id}")[0]
    return unique("V"), call.args["view"]


class BotUnderTest:
    """One bot: Bolt app + HTTP server on a free port + (optionally) its result consumer."""

    def __init__(self, fake: SlackFake, settings: BotSettings, queue: JobQueue | None = None) -> None:
        self.fake = fake
        self.settings = settings
        # `queue`: a test's own (e.g. on a Redis client with short timeouts); else the bot's, with its limits
        self.queue = queue or open_queue(settings)
        self.metrics = BotMetrics()
        self.installations, states = open_installations(settings, self.metrics)  # many workspaces: settings.oauth
        self.services = Services.create(settings, self.queue, self.metrics, installations=self.installations)
        self.app = build_app(settings, self.services, states)
        self._server = ServerThread(SlackFront(self.app, settings), settings)
        self.url = self._server.url
        self.base_url = self.url.removesuffix("/slack/events")
        self.http = requests.Session()
        self.delivery: Delivery | None = None
        self.sweeper: Sweeper | None = None
        self.progress: LiveProgress | None = None

    def start_delivery(self) -> Delivery:
        self.delivery = Delivery(self.services.flow).start()
        return self.delivery

    def start_sweeper(self) -> Sweeper:
        self.sweeper = Sweeper(self.services.flow).start()
        return self.sweeper

    def start_progress(self) -> LiveProgress:
        self.progress = LiveProgress(self.services.flow).start()
        return self.progress

    def close(self) -> None:
        self.services.flow.stopping.set()  # ends Slack retries at once
        for component in (self.delivery, self.sweeper, self.progress):
            if component is not None:
                component.stop()
        self.services.flow.close()  # the lanes, once nothing can hand them work
        self.http.close()
        self._server.close()
        self.queue.redis.close()
        if self.installations is not None:
            self.installations.store.engine.dispose()  # the SQLAlchemy store's connections

    # -- requests ---------------------------------------------------------------------
    def post(self, body: str, content_type: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None,
             headers: dict[str, str] | None = None) -> Reply:
        all_headers = {**signed_headers(body, content_type, secret=secret, timestamp=timestamp), **(headers or {})}
        started = time.perf_counter()
        response = self.http.post(self.url, data=body.encode(), headers=all_headers, timeout=30)
        return Reply(response.status_code, response.text, time.perf_counter() - started)

    def command(self, text: str, *, channel: str, user: str = USER, trigger_id: str | None = None,
                **kwargs: Any) -> Reply:
        form = command_payload(self.fake, text, channel=channel, user=user, trigger_id=trigger_id)
        reply = self.post(urlencode(form), "application/x-www-form-urlencoded", **kwargs)
        reply.response_id, reply.trigger_id = form["response_url"].rsplit("/", 1)[1], form["trigger_id"]
        return reply

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> Reply:
        envelope = event_callback(event, event_id=event_id)
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"} if retry_num else None
        return self.post(json.dumps(envelope), "application/json", headers=headers)

    def interactive(self, payload: dict[str, Any]) -> Reply:
        return self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def mention(self, channel: str, text: str, *, thread_ts: str | None = None, files: list[dict] | None = None,
                user: str = USER) -> dict[str, Any]:
        """Post a message mentioning the bot into the fake, and send its app_mention event."""
        event = mention_event(self.fake, channel, text, thread_ts=thread_ts, files=files, user=user)
        reply = self.event(event)
        assert reply.status == 200, reply
        return event

    def direct_message(self, channel: str, text: str, *, thread_ts: str | None = None,
                       files: list[dict] | None = None, user: str = USER) -> dict[str, Any]:
        event = direct_message_event(self.fake, channel, text, thread_ts=thread_ts, files=files, user=user)
        reply = self.event(event)
        assert reply.status == 200, reply
        return event

    def view_submission(self, view_id: str, view: dict[str, Any], values: dict[str, str],
                        user: str = USER) -> Reply:
        """Submit a modal that the bot opened (`view` as recorded by views.open)."""
        return self.interactive(view_submission_payload(view_id, view, values, user))

    def click(self, channel: str, message: dict[str, Any], action_id: str, value: str, user: str = USER) -> Reply:
        """Click an element of the bot's `message` (see `block_action_payload`)."""
        return self.interactive(block_action_payload(self.fake, channel, message, action_id, value, user))

    def message_shortcut(self, channel: str, message: dict[str, Any], user: str = USER) -> Reply:
        payload = message_shortcut_payload(self.fake, channel, message, user)
        reply = self.interactive(payload)
        reply.trigger_id = payload["trigger_id"]
        return reply

    # -- what happened ----------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job not yet finished, read with XRANGE so no worker's delivery is disturbed."""
        entries = self.queue.redis.xrange(self.queue.keys.jobs)
        return [Job.from_json(fields["job"]) for _id, fields in entries]

    def job_passage(self, job: Job) -> str | None:
        return self.queue.passages([job])[0]

    def opened_view(self, trigger_id: str) -> tuple[str, dict[str, Any]]:
        return opened_view(self.fake, trigger_id)

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


ENTRY = [sys.executable, "-c", "from bot.app import main; raise SystemExit(main())"]  # what qa-bot runs


@contextmanager
def http_bot_process(fake: SlackFake, redis_url: str, namespace: str, log_path: Path,
                     **env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`qa-bot` as shipped, in HTTP mode, with `env` on top: yields the process and the URL to
    post to once it listens; afterwards its log must hold no traceback and no token."""
    port = free_port()
    full_env = {**os.environ, "BOT_MODE": "http", "PORT": str(port), "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url, "REDIS_URL": redis_url,
                "QA_NAMESPACE": namespace, "QA_BOT_METRICS_PORT": "0", **env}  # no shared default port under xdist
    full_env.pop("SLACK_APP_TOKEN", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(ENTRY, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{env.get('BIND_HOST', '127.0.0.1')}:{port}/slack/events"
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return requests.post(url, timeout=2).status_code >= 400  # no Slack headers: refused
            except requests.ConnectionError:
                return False
        wait_until(up, timeout=60, what="qa-bot to listen")
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = log_path.read_text(errors="replace")
    assert BOT_TOKEN not in log  # tokens never reach the logs
    assert "Traceback" not in log, log
