"""/healthz and /readyz of both processes as shipped, while what they depend on goes away.

- The bot (Socket Mode): ready once Redis answers and its Socket Mode connection is open; not
  ready while Redis is down (and ready again when it is back), nor once Slack's end of the
  connection is gone. Alive all along.
- The worker: alive from its start, not ready while it loads its model, then ready; not ready
  while Redis is down.
"""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.bot_harness import ENTRY, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.slack_fake import BOT_TOKEN, SlackFake
from tests.support.socket_mode_fake import APP_TOKEN, attached
from tests.support.worker_process import READY_TIMEOUT_S, WorkerProcess

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0  # a process's imports on a busy 2-core machine
CHANGE_TIMEOUT_S = 30.0  # a probe sees a change at its next request; Socket Mode notices a closed link in seconds


def probe(port: int, path: str) -> tuple[int, dict]:
    """Status and JSON body of `path` on the process's metrics port; (0, {}) while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as page:
            return page.status, json.loads(page.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def readiness(port: int) -> tuple[int, dict[str, str]]:
    status, body = probe(port, "/readyz")
    return status, body.get("checks", {})


@pytest.fixture()
def slack() -> Iterator[SlackFake]:
    fake = SlackFake().start()
    try:
        with attached(fake):
            yield fake
    finally:
        fake.close()


def test_bot_readiness_follows_redis_and_the_socket_mode_connection(slack: SlackFake, durable_redis: RedisServer,
                                                                     tmp_path: Path) -> None:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("SLACK_", "BOT_MODE"))}
    env.update({"BOT_MODE": "socket", "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                "SLACK_API_URL": slack.api_url, "REDIS_URL": durable_redis.url, "QA_NAMESPACE": "health",
                "QA_BOT_METRICS_PORT": str(port)})
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(ENTRY, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def alive() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return probe(port, "/healthz") == (200, {"status": "alive"})
        wait_until(alive, START_TIMEOUT_S, "the bot's /healthz")
        wait_until(lambda: readiness(port) == (200, {"redis": "ok", "socket_mode": "ok"}), START_TIMEOUT_S,
                   "the bot ready: Redis and Socket Mode")

        durable_redis.stop()
        status, checks = wait_until(lambda: (r := readiness(port))[0] == 503 and r, CHANGE_TIMEOUT_S,
                                    "the bot not ready without Redis")
        assert checks["redis"].startswith("Redis unreachable") and checks["socket_mode"] == "ok"
        assert probe(port, "/healthz")[0] == 200  # alive: nothing to restart
        durable_redis.start()
        wait_until(lambda: readiness(port)[0] == 200, CHANGE_TIMEOUT_S, "the bot ready again with Redis back")

        slack.socket_mode.close()  # Slack's end of the connection goes away
        status, checks = wait_until(lambda: (r := readiness(port))[0] == 503 and r, CHANGE_TIMEOUT_S,
                                    "the bot not ready without its Socket Mode connection")
        assert checks == {"redis": "ok", "socket_mode": "not connected to Slack"}
        assert probe(port, "/healthz")[0] == 200
        assert probe(port, "/elsewhere")[0] == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert BOT_TOKEN not in log_path.read_text()


def test_worker_is_alive_at_once_and_ready_once_its_model_is_loaded(durable_redis: RedisServer, tiny_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    port = free_port()
    worker = WorkerProcess.tiny(durable_redis.url, "health", tiny_model_dir, tmp_path, QA_METRICS_PORT=str(port))
    worker.start()
    try:
        def alive() -> bool:
            assert worker.alive, worker.log()
            return probe(port, "/healthz")[0] == 200
        wait_until(alive, START_TIMEOUT_S, "the worker's /healthz", interval=0.02)
        assert " ready: " not in worker.log()  # TensorFlow takes seconds to import: the probe came first
        status, checks = readiness(port)
        assert status == 503 and checks["model"] == f"loading {tiny_model_dir}" and checks["redis"] == "ok"
        worker.wait_ready()
        wait_until(lambda: readiness(port) == (200, {"redis": "ok", "model": "ok"}), READY_TIMEOUT_S,
                   "the worker ready")
        durable_redis.stop()
        status, checks = readiness(port)
        assert status == 503 and checks["redis"].startswith("Redis unreachable") and checks["model"] == "ok"
        assert probe(port, "/healthz")[0] == 200
    finally:
        worker.stop()
