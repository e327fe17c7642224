"""`qa-bot` as shipped: HTTP mode (Hypercorn, one process or several, its bind address),
configuration errors, and the rule that the bot process never imports TensorFlow or transformers.

What HTTP mode refuses and how it holds up under slow or oversized clients: test_http_server.py."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from explain_core.queue import JobQueue
from tests.support.bot_harness import ENTRY, ROOT, SIGNING_SECRET, http_bot_process, unique, wait_until
from tests.support.slack_fake import BOT_TOKEN, TEAM_ID, SlackFake


@pytest.fixture()
def fake() -> Iterator[SlackFake]:
    server = SlackFake().start()
    yield server
    server.close()


def signed(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)}


@contextmanager
def http_bot(fake: SlackFake, redis_url: str, namespace: str, log_path: Path, **env: str) -> Iterator[str]:
    """`qa-bot` in HTTP mode with `env` on top; yields the URL to post to once it answers."""
    with http_bot_process(fake, redis_url, namespace, log_path, **env) as (_proc, url):
        yield url


def ask(url: str, fake: SlackFake) -> str:
    """A signed `/explain` question; checks that a forged copy is refused; returns its channel."""
    channel = unique("C")
    body = urlencode({"team_id": TEAM_ID, "channel_id": channel, "user_id": unique("U"), "command": "/explain",
                      "text": "Who? | Ada lived in London.", "trigger_id": unique("trig."),
                      "response_url": f"{fake.url}/response/x"})
    assert requests.post(url, data=body, headers=signed(body, "forged"), timeout=10).status_code == 401
    assert requests.post(url, data=body, headers=signed(body), timeout=10).status_code == 200
    fake.wait_for(lambda: fake.calls("chat.postMessage", channel=channel), what="the placeholder")
    return channel


def test_http_mode_as_shipped(fake: SlackFake, redis_url: str, namespace: str, tmp_path: Path) -> None:
    """Defaults: one process, listening on every interface (a proxy or a container's port
    mapping must reach it); Bolt builds the app without a warning."""
    with http_bot(fake, redis_url, namespace, tmp_path / "bot.log") as url:
        ask(url, fake)
        wait_until(lambda: JobQueue.connect(redis_url, namespace).depth() == 1, what="the job (after its placeholder)")
        ask(url.replace("127.0.0.1", "127.0.0.2"), fake)  # not only loopback's usual address
    log = (tmp_path / "bot.log").read_text()
    assert "starting in HTTP mode on 0.0.0.0" in log
    assert "WARNING slack_bolt" not in log  # "`token` will be unused", at every start until now


def test_http_mode_in_two_processes_on_a_chosen_address(fake: SlackFake, redis_url: str, namespace: str,
                                                        tmp_path: Path) -> None:
    """WEB_CONCURRENCY=2: two serving processes, each with its own result consumer; BIND_HOST
    is the only address that answers."""
    with http_bot(fake, redis_url, namespace, tmp_path / "bot.log", BIND_HOST="127.0.0.2",
                  WEB_CONCURRENCY="2") as url:
        with pytest.raises(requests.ConnectionError):
            requests.post(url.replace("127.0.0.2", "127.0.0.1"), timeout=2)
        for _ in range(4):
            ask(url, fake)
        queue = JobQueue.connect(redis_url, namespace)

        def readers() -> int:  # result consumers blocked in XREADGROUP: one connection per process
            return sum(client["cmd"] == "xreadgroup" for client in queue.redis.client_list())
        wait_until(lambda: readers() == 2, what="a result consumer in each of the two processes")


@pytest.mark.parametrize("env, message", [
    ({"BOT_MODE": "http", "SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN is not set"),
    ({"BOT_MODE": "http"}, "SLACK_BOT_TOKEN is not set"),
    ({"BOT_MODE": "lambda", "SLACK_BOT_TOKEN": "xoxb-1"}, "BOT_MODE must be 'socket' or 'http'"),
])
def test_configuration_errors_are_one_clear_line(env: dict[str, str], message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BOT_MODE"))}
    done = subprocess.run(ENTRY, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("tokens, message", [
    ({"SLACK_BOT_TOKEN": "xoxb-wrong", "SLACK_APP_TOKEN": "xapp-1"}, "Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
    ({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-wrong"},
     "Slack rejected SLACK_APP_TOKEN (invalid_auth)"),
])
def test_rejected_tokens_are_one_clear_line(fake: SlackFake, redis_url: str, tokens: dict[str, str],
                                            message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BOT_MODE"))}
    env = {**clean, **tokens, "SLACK_API_URL": fake.api_url, "REDIS_URL": redis_url}
    done = subprocess.run(ENTRY, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert "xoxb-wrong" not in done.stderr and "xapp-wrong" not in done.stderr


def test_manifest_and_procfile_match_the_code() -> None:
    """What a user pastes into Slack must declare every command, shortcut, event and scope used."""
    from bot.listeners.shortcuts.ask_about_message import CALLBACK_ID

    manifest = json.loads((ROOT / "manifest.json").read_text())
    features, settings = manifest["features"], manifest["settings"]
    assert [c["command"] for c in features["slash_commands"]] == ["/explain"]
    assert [(s["type"], s["callback_id"]) for s in features["shortcuts"]] == [("message", CALLBACK_ID)]
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "app_home_opened", "message.im"}
    assert features["app_home"]["home_tab_enabled"] is True
    assert {"commands", "chat:write", "app_mentions:read", "channels:history", "im:history", "files:read",
            "files:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert settings["socket_mode_enabled"] is True and settings["interactivity"]["is_enabled"] is True
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert procfile == {"bot": "qa-bot", "worker": "qa-worker"}
