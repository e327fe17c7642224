"""How fast does the bot acknowledge Slack? p50/p99 over 200 `/explain` slash commands.

Runs `qa-bot` exactly as deployed in HTTP mode (Hypercorn, BOT_MODE=http) against the Slack
Web API fake from tests/ and a private redis-server, and times signed slash commands from
request to HTTP response (what Slack's 3-second budget measures), in three conditions:

- sequential: one command at a time;
- concurrent: 8 clients at once;
- Redis frozen: redis-server stopped with SIGSTOP, so every enqueue hangs: the ack must not
  care, since the ack part of a listener never touches Redis.

Usage: python -m bench.bench_bot_ack [--commands 200]
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier

from tests.support import ROOT  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402
from tests.support.slack_fake import BOT_TOKEN, TEAM_ID, SlackFake  # noqa: E402

SECRET = "bench-signing-secret"
PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended for a machine, "
           "the Analytical Engine designed by Charles Babbage.")


def start_bot(fake: SlackFake, redis_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BOT_MODE": "http", "PORT": str(port), "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake.api_url, "REDIS_URL": redis_url,
           "QA_NAMESPACE": "bench"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot.app"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.post(f"http://127.0.0.1:{port}/slack/events", timeout=2)
            return proc
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"qa-bot did not start:\n{log_path.read_text()}") from None
            time.sleep(0.2)


def one_command(session: requests.Session, url: str, fake: SlackFake, n: int) -> float:
    body = urlencode({"team_id": TEAM_ID, "channel_id": f"CBENCH{n % 20}", "user_id": "UBENCH", "command": "/explain",
                      "text": f"Where did Ada live? ({n}) | {PASSAGE}", "trigger_id": f"bench.{time.time_ns()}.{n}",
                      "response_url": f"{fake.url}/response/bench{n}"})
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)}
    started = time.perf_counter()
    response = session.post(url, data=body, headers=headers, timeout=30)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"command {n}: HTTP {response.status_code} {response.text}")
    return elapsed * 1000


def measure(url: str, fake: SlackFake, commands: int, clients: int, offset: int) -> list[float]:
    sessions = [requests.Session() for _ in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda n: one_command(sessions[n % clients], url, fake, offset + n), range(commands)))


def report(name: str, millis: list[float]) -> str:
    ordered = sorted(millis)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered))) - 1)]
    line = (f"{name:<22} n={len(ordered):<4} p50={statistics.median(ordered):7.1f} ms  p99={p99:7.1f} ms  "
            f"max={ordered[-1]:7.1f} ms  (Slack's budget: 3000 ms; p99 is {p99 / 3000:.1%} of it)")
    print(line, flush=True)
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    fake = SlackFake().start()
    redis_server = RedisServer(appendonly=False).start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        bot = start_bot(fake, redis_server.url, port, Path(tmp) / "bot.log")
        url = f"http://127.0.0.1:{port}/slack/events"
        try:
            one_command(requests.Session(), url, fake, -1)  # warm-up (auth.test, first Redis connection)
            report("sequential", measure(url, fake, args.commands, 1, 0))
            report("concurrent (8 clients)", measure(url, fake, args.commands, 8, args.commands))
            assert redis_server.proc is not None
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                report("Redis frozen (SIGSTOP)", measure(url, fake, args.commands, 8, 2 * args.commands))
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
        finally:
            bot.terminate()
            bot.wait(timeout=30)
            redis_server.close()
            fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
