"""`qa-bot` as shipped: HTTP mode under gunicorn, configuration errors, and the rule that
the bot process never imports TensorFlow or transformers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from explain_core.queue import JobQueue
from tests.support.bot_harness import ROOT, SIGNING_SECRET, unique, wait_until
from tests.support.redis_server import free_port
from tests.support.slack_fake import BOT_TOKEN, TEAM_ID, SlackFake

ENTRY = [sys.executable, "-c", "from bot.app import main; raise SystemExit(main())"]


@pytest.fixture()
def fake() -> Iterator[SlackFake]:
    server = SlackFake().start()
    yield server
    server.close()


def signed(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Slack-Request-Timestamp": stamp, "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)}


def test_http_mode_under_gunicorn(fake: SlackFake, redis_url: str, namespace: str, tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "BOT_MODE": "http", "PORT": str(port), "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url, "REDIS_URL": redis_url,
           "QA_NAMESPACE": namespace}
    env.pop("SLACK_APP_TOKEN", None)
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(ENTRY, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return requests.post(url, data=b"", timeout=2).status_code == 401
            except requests.ConnectionError:
                return False
        wait_until(up, timeout=60, what="gunicorn to listen")

        channel = unique("C")
        body = urlencode({"team_id": TEAM_ID, "channel_id": channel, "user_id": "U1", "command": "/explain",
                          "text": "Who? | Ada lived in London.", "trigger_id": unique("trig."),
                          "response_url": f"{fake.url}/response/x"})
        assert requests.post(url, data=body, headers=signed(body, "forged"), timeout=10).status_code == 401
        reply = requests.post(url, data=body, headers=signed(body), timeout=10)
        assert reply.status_code == 200
        fake.wait_for(lambda: fake.calls("chat.postMessage", channel=channel), what="the placeholder")
        queue = JobQueue.from_url(redis_url, namespace)
        assert queue.depth() == 1
        assert BOT_TOKEN not in log_path.read_text()  # tokens never reach the logs
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
     "Slack refused the Socket Mode connection (invalid_auth)"),
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
    assert set(settings["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert {"commands", "chat:write", "app_mentions:read", "channels:history", "im:history", "files:read",
            "files:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert settings["socket_mode_enabled"] is True and settings["interactivity"]["is_enabled"] is True
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    assert procfile == {"bot": "qa-bot", "worker": "qa-worker"}
