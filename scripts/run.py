"""`make run`: start the Slack bot and the worker (the Procfile) from this project's own environment.

A first start is where a newcomer's mistakes show, so each step that can fail ends in one line
naming what to do, before anything is left running:

1. the environment: `.env` (KEY=value lines) under the variables already set in the shell,
   which win (so `QA_MODEL=... make run` works as `QA_MODEL=... make demo` does);
2. the settings the bot and the worker read at start-up, read here by the same code, so a
   missing Slack token is named with where it comes from; then Slack is asked whether it
   takes the tokens, as qa-bot does when it starts;
3. the models: `qa-worker --download` in the foreground, so that a first download shows
   huggingface_hub's progress bar (under honcho stderr is a pipe and the bar is not drawn) and
   a model that cannot be had stops here; later starts load it from the cache without the network;
4. Redis: when REDIS_URL is on this machine (the default, redis://localhost:6379/0) and
   nothing answers there, a redis-server of our own, append-only, data in `data/redis`
   (never with REDIS_SENTINELS: a Sentinel-managed Redis is the operator's);
5. `honcho start` with the virtualenv's bin first on PATH (so the Procfile's `qa-bot` and
   `qa-worker` are this project's) and PORT as the bot's port, until it ends or Ctrl-C;
   then the redis-server we started is stopped, after the worker has written what it had.

The standard library, the project's settings readers and slack_sdk's client; never TensorFlow.
Options exist for the tests: another Procfile, .env file or data folder, no download step.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bot.settings import BotSettings
    from explain_core.queue import RedisTarget

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's bin (the Makefile runs this with $(BIN)/python)
PROG = "make run"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
REDIS_START_S = 10.0
REDIS_STOP_S = 10.0
PING_TIMEOUT_S = 1.0


class Stop(Exception):
    """A step failed; its message is the one line the user sees (exit code 2)."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file: blank lines and `#` comments skipped, an `export ` prefix
    and quotes around the value allowed, a ` #` comment after an unquoted value dropped."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if value[:1] in ("'", '"'):
            parts = shlex.split(value, comments=True)
            value = parts[0] if parts else ""
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def environment(env_file: Path, shell: Mapping[str, str]) -> dict[str, str]:
    """The service's environment: the .env file, overridden by what the shell already has,
    with this virtualenv's bin first on PATH."""
    env = {**read_env_file(env_file), **shell}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", os.defpath)])
    env.setdefault("PYTHONUNBUFFERED", "1")  # log lines reach honcho as they are written
    return env


def check_settings(env: Mapping[str, str]) -> BotSettings:
    """Read the bot's and the worker's settings as they will at their start."""
    from bot.settings import SETUP_SECTION, BotSettings
    from explain_core.errors import ConfigError
    from explain_core.worker.config import WorkerConfig

    try:
        bot = BotSettings.from_env(env)
        WorkerConfig.from_env(env)
    except ConfigError as exc:
        where = f"see {SETUP_SECTION}" if str(exc).startswith("SLACK_") else "see .env.example"
        raise Stop(f"{exc}; set it in .env (cp .env.example .env), {where}") from None
    return bot


def check_slack(settings: BotSettings) -> None:
    """qa-bot's own check of the tokens, so that a wrong one stops everything in one line
    before anything runs."""
    from bot.app import check_slack as problem_with

    problem = problem_with(settings)
    if problem:
        raise Stop(problem)


def download_models(env: Mapping[str, str]) -> None:
    """`qa-worker --download` on this terminal; it prints its own one line when it fails."""
    # Its own session: Ctrl-C interrupts us, and `call` then kills it without a traceback on screen.
    code = subprocess.call([str(BIN / "qa-worker"), "--download"], env=dict(env), cwd=ROOT, start_new_session=True)
    if code != 0:
        raise SystemExit(code)


def answers(host: str, port: int) -> bool:
    """Whether anything answers a Redis PING at host:port (an error reply counts: it is a Redis)."""
    try:
        with socket.create_connection((host, port), timeout=PING_TIMEOUT_S) as sock:
            sock.sendall(b"PING\r\n")
            return bool(sock.recv(64))
    except OSError:
        return False


class LocalRedis:
    """A redis-server of our own on a loopback port: append-only, its files in `folder`, its
    own session (Ctrl-C reaches it only through us, after the worker has stopped)."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise Stop(f"nothing answers at 127.0.0.1:{self.port} and redis-server is not installed: install Redis "
                       "(apt-get install redis-server, brew install redis) or set REDIS_URL to a Redis you run")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "redis.log"
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--dir", str(self.folder), "--logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + REDIS_START_S
        while not answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
                raise Stop(f"redis-server did not start on port {self.port}: {last[0] if last else 'no log'} "
                           f"(log: {log})")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits; killed if it takes too long."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=REDIS_STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def redis_to_start(target: RedisTarget, data_dir: Path) -> LocalRedis | None:
    """A LocalRedis when REDIS_URL is a password-less Redis on this machine and nothing answers
    there; None when something answers, or when the URL is elsewhere or Sentinel names the
    primary (then it is the operator's Redis and the worker says so if it is down)."""
    if target.sentinels:
        print(f"{PROG}: using Redis through {target.where()}", flush=True)
        return None
    parts = urlsplit(target.url)
    if parts.scheme != "redis" or parts.hostname not in LOOPBACK or parts.password or parts.username:
        return None
    port = parts.port or 6379
    if answers(parts.hostname, port):
        print(f"{PROG}: using the Redis that answers at {parts.hostname}:{port}", flush=True)
        return None
    return LocalRedis(port, data_dir / "redis")


def serve(procfile: Path, env: dict[str, str], port: int) -> int:
    """honcho until it ends; SIGINT/SIGTERM to us are passed on to it, which stops each process
    (the worker finishes the jobs in hand). A stop we were asked for is a normal end (0)."""
    honcho = BIN / "honcho"
    if not honcho.exists():
        raise Stop(f"{honcho} is missing: run `make install` (the bot's extras include honcho)")
    proc = subprocess.Popen(
        # -e os.devnull: the environment is already merged here (the shell wins over .env; honcho's own
        # reading would let .env win). -p: honcho gives the first process (the bot) this PORT.
        [str(honcho), "start", "-f", str(procfile), "-d", str(ROOT), "-e", os.devnull, "-p", str(port)],
        env=env, cwd=ROOT, start_new_session=True,
    )
    stopped: list[int] = []

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)
        proc.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopped else code


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data", help="where an embedded Redis keeps its files")
    parser.add_argument("--no-download", action="store_true", help="skip `qa-worker --download`")
    args = parser.parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # a stop (or a closed terminal) before honcho runs
        signal.signal(sig, _interrupt)  # still stops our redis-server
    env = environment(args.env_file, os.environ)
    redis: LocalRedis | None = None
    try:
        settings = check_settings(env)
        check_slack(settings)
        if not args.no_download:
            download_models(env)
        redis = redis_to_start(settings.redis, args.data_dir.resolve())
        if redis is not None:
            print(f"{PROG}: nothing answers at {settings.redis.url}; starting redis-server on port {redis.port} "
                  f"(append-only, data in {redis.folder}) until this stops", flush=True)
            redis.start()
        return serve(args.procfile.resolve(), env, settings.port)
    except Stop as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
