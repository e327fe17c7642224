"""`make run` (scripts/run.py): one line and nothing started when a token is missing or Slack
refuses it; a local redis-server, append-only in the data folder, when nothing answers at
REDIS_URL, stopped at the end and on Ctrl-C; the Procfile's processes run from this
project's virtualenv.

The launcher runs as a subprocess, as `make run` runs it, with a Procfile of short-lived
commands in place of the bot and the worker, the tests' Slack fake as SLACK_API_URL (in HTTP
mode, which needs no Socket Mode server), and a free loopback port as REDIS_URL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support import ROOT
from tests.support.redis_server import free_port
from tests.support.slack_fake import BOT_TOKEN, SlackFake

RUN = ROOT / "scripts" / "run.py"
# What the Procfile's process reports: that Redis answers and how it is configured, and which
# python the Procfile's `python` is (the virtualenv's, first on PATH).
PROBE = """
import json, os, shutil, sys, redis
client = redis.Redis.from_url(os.environ["REDIS_URL"])
report = {"pong": client.ping(), "appendonly": client.config_get("appendonly")["appendonly"],
          "dir": client.config_get("dir")["dir"], "python": shutil.which("python"), "port": os.environ.get("PORT")}
open(sys.argv[1], "w").write(json.dumps(report))
"""


@pytest.fixture()
def slack() -> Iterator[dict[str, str]]:
    """The Slack settings of a bot that the Slack fake accepts (HTTP mode: auth.test only)."""
    fake = SlackFake().start()
    try:
        yield {"SLACK_API_URL": fake.api_url, "SLACK_BOT_TOKEN": BOT_TOKEN, "BOT_MODE": "http",
               "SLACK_SIGNING_SECRET": "test-secret"}
    finally:
        fake.close()


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without anything a developer's shell could add to the launcher's."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "QA_", "BOT_")) and k not in ("REDIS_URL", "PORT")}
    return {**keep, **extra}


def _launch(tmp_path: Path, procfile: str, env_file: str = "") -> list[str]:
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    (tmp_path / "Procfile").write_text(procfile, encoding="utf-8")
    (tmp_path / ".env").write_text(env_file, encoding="utf-8")
    return [sys.executable, str(RUN), "--procfile", str(tmp_path / "Procfile"), "--env-file", str(tmp_path / ".env"),
            "--data-dir", str(tmp_path / "data"), "--no-download"]


def _refuses(port: int) -> bool:
    try:
        redis.Redis(port=port, socket_connect_timeout=1).ping()
    except redis.ConnectionError:
        return True
    return False


@pytest.mark.parametrize(("given", "missing", "where"), [
    ({}, "SLACK_BOT_TOKEN", "OAuth & Permissions"),
    ({"SLACK_BOT_TOKEN": "xoxb-test"}, "SLACK_APP_TOKEN", "xapp-"),
    ({"SLACK_BOT_TOKEN": "xoxb-test", "BOT_MODE": "http"}, "SLACK_SIGNING_SECRET", "Signing Secret"),
])
def test_a_missing_token_is_one_line_exit_2_and_nothing_starts(tmp_path, given, missing, where):
    marker = tmp_path / "started"
    argv = _launch(tmp_path, f"any: touch {marker}\n")
    done = subprocess.run(argv, env=_env(**given), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert missing in lines[0] and where in lines[0] and 'README.md, "Set up the Slack app"' in lines[0]
    assert done.stdout == "" and not marker.exists() and not (tmp_path / "data").exists()


def test_a_token_slack_refuses_or_a_slack_out_of_reach_is_one_line_and_nothing_starts(tmp_path, slack):
    marker = tmp_path / "started"
    argv = _launch(tmp_path, f"any: touch {marker}\n")
    closed = f"http://127.0.0.1:{free_port()}/api/"
    for given, expected in [({"SLACK_BOT_TOKEN": "xoxb-wrong"}, "Slack rejected SLACK_BOT_TOKEN (invalid_auth)"),
                            ({"BOT_MODE": "socket", "SLACK_APP_TOKEN": "xapp-wrong"},
                             "Slack rejected SLACK_APP_TOKEN (invalid_auth)"),
                            ({"SLACK_API_URL": closed}, f"cannot reach Slack at {closed}")]:
        done = subprocess.run(argv, env=_env(**{**slack, **given}), capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], done.stderr
        assert not marker.exists() and not (tmp_path / "data").exists()


def test_nothing_answering_starts_an_append_only_redis_that_stops_at_the_end(tmp_path, slack):
    port = free_port()
    report = tmp_path / "report.json"
    # The tokens and REDIS_URL come from the .env file: the launcher reads it.
    env_file = "".join(f"{k}={v}\n" for k, v in slack.items()) + f"REDIS_URL=redis://localhost:{port}/0\n"
    argv = _launch(tmp_path, f"probe: python {tmp_path / 'probe.py'} {report}\n", env_file)
    done = subprocess.run(argv, env=_env(PORT="3456"), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(report.read_text())
    assert seen["pong"] is True and seen["appendonly"] == "yes"
    assert Path(seen["dir"]) == (tmp_path / "data" / "redis").resolve()
    assert Path(seen["python"]).parent == Path(sys.executable).parent  # the virtualenv's bin is first on PATH
    assert seen["port"] == "3456"  # honcho gives the first process PORT, not its own 5000
    assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()
    assert _refuses(port), "the redis-server started by the launcher is still running"
    assert f"nothing answers at redis://localhost:{port}/0" in done.stdout


def test_a_redis_that_answers_is_used_and_left_alone(tmp_path, redis_url, slack):
    report = tmp_path / "report.json"
    argv = _launch(tmp_path, f"probe: python {tmp_path / 'probe.py'} {report}\n")
    done = subprocess.run(argv, env=_env(REDIS_URL=redis_url, **slack), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(report.read_text())["pong"] is True
    assert not (tmp_path / "data").exists() and "using the Redis that answers" in done.stdout
    assert redis.Redis.from_url(redis_url).ping()


def test_ctrl_c_stops_the_processes_and_then_redis(tmp_path, slack):
    port = free_port()
    pid_file = tmp_path / "sleeper.pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    argv = _launch(tmp_path, f'sleeper: python -c "{sleeper}"\n')
    proc = subprocess.Popen(argv, env=_env(REDIS_URL=f"redis://127.0.0.1:{port}/0", **slack),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        assert not _refuses(port)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the foreground process group on Ctrl-C
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _refuses(port)
    assert not _alive(int(pid_file.read_text()))


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for init to reap it does not count)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True
