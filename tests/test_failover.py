"""Redis Sentinel: the bot, the worker and the tools find the primary through the sentinels, and a
failover (the primary SIGKILLed, its replica promoted) costs no restart and no silence.

Real processes: a primary, its replica and three sentinels (`tests.support.redis_server.
SentinelCluster`, failover in about 2 s), a real TensorFlow worker with the tiny model, the
real bot (HTTP mode, its result consumer and sweeper) on the Slack fake; all of them given only
REDIS_SENTINELS and REDIS_SENTINEL_MASTER. Just before the kill, one question is queued and
replicated (it must be answered after the failover) and one is written to the primary alone, the
replica cut off, which is what a failover loses: its asker must be told.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.metrics import QueueCollector
from explain_core.ops import redis_check
from explain_core.queue import JobQueue, RedisTarget
from explain_core.settings import Env
from tests.support import ROOT
from tests.support.bot_harness import BotUnderTest, settings_for, slack, unique, wait_until
from tests.support.redis_server import SentinelCluster, free_port
from tests.support.slack_fake import SlackFake
from tests.support.worker_process import WorkerProcess

__all__ = ["slack"]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_failover")]

NAMESPACE = "failover"
PASSAGE = "Ada Lovelace lived in London. In 1843 she published the first algorithm for a machine."
REPLY_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[SentinelCluster]:
    started = SentinelCluster().start()
    yield started
    started.close()


@pytest.fixture(scope="module")
def target(cluster: SentinelCluster) -> RedisTarget:
    return RedisTarget.from_env(Env(cluster.env))


@pytest.fixture(scope="module")
def worker(cluster: SentinelCluster, tiny_model_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    handle = WorkerProcess.tiny("", NAMESPACE, tiny_model_dir, tmp_path_factory.mktemp("worker"),
                                QA_METRICS_PORT=str(free_port()), **cluster.env).start()
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def bot(slack: SlackFake, target: RedisTarget) -> Iterator[BotUnderTest]:
    under_test = BotUnderTest(slack, settings_for(slack, target, NAMESPACE, sweep_interval_s=0.2, lost_grace_s=1.0,
                                                  slack_retry_s=10.0))
    under_test.start_delivery()
    under_test.start_sweeper()  # as `bot.app.start` runs them
    yield under_test
    under_test.close()


def final_text(bot: BotUnderTest, channel: str) -> str:
    """The one message the placeholder in `channel` became (waits for it)."""
    [update] = bot.fake.wait_for(lambda: [c.args for c in bot.fake.calls("chat.update", channel=channel)
                                          if c.status == 200], REPLY_TIMEOUT_S, f"the final message in {channel}")
    return str(update["text"])


def ask(bot: BotUnderTest, user: str) -> str:
    channel = unique("C")
    assert bot.command(f"Where did Ada Lovelace live? | {PASSAGE}", channel=channel, user=user).status == 200
    return channel


def tool(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_tools_reach_the_primary_through_the_sentinels(cluster: SentinelCluster) -> None:
    check = tool(["-m", "explain_core.worker", "--check"], {**cluster.env, "QA_NAMESPACE": NAMESPACE})
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: Redis at Sentinel master 'qa-primary'")
    votes = tool(["-c", "from explain_core.queue.feedback import main; raise SystemExit(main())"], cluster.env)
    assert (votes.returncode, votes.stdout, votes.stderr.strip()) == (0, "", "qa-feedback: 0 vote(s)")


@pytest.mark.parametrize("variables, named", [
    ({"REDIS_SENTINELS": "127.0.0.1:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "qa-primary"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "127.0.0.1:port", "REDIS_SENTINEL_MASTER": "qa-primary"}, "REDIS_SENTINELS"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
], ids=["no-master", "no-sentinels", "bad-port", "bad-url"])
def test_a_bad_value_is_one_line_at_start(variables: dict[str, str], named: str) -> None:
    for args in (["-m", "explain_core.worker", "--check"],
                 ["-c", "from explain_core.queue.feedback import main; raise SystemExit(main())"]):
        done = tool(args, {"REDIS_SENTINELS": "", "REDIS_SENTINEL_MASTER": "", **variables})
        assert done.returncode == 2, done.stdout + done.stderr
        [line] = done.stderr.strip().splitlines()
        assert named in line and "Traceback" not in done.stderr


def test_after_a_failover_both_processes_answer_and_a_lost_question_is_told(
        cluster: SentinelCluster, target: RedisTarget, worker: WorkerProcess, bot: BotUnderTest) -> None:
    worker.wait_ready()
    assert final_text(bot, ask(bot, "UBEFORE")).startswith(("Answer: ", "No answer in this passage"))

    # The worker is stopped with its waiting read closed, so that the jobs below stay in the stream
    # (else the primary would hand them to it at once): one the replica gets too, then one the
    # primary takes alone, the replica cut off.
    assert worker.proc is not None and cluster.replica is not None
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.1)
        primary, replica = cluster.client(cluster.primary), cluster.client(cluster.replica)
        for client in primary.client_list():
            if client["cmd"] in ("xreadgroup", "xread"):
                primary.client_kill_filter(_id=client["id"])
        kept = ask(bot, "UKEPT")
        wait_until(lambda: replica.xlen(f"{NAMESPACE}:jobs") == 1, what="the first job on the replica")
        cluster.cut_replica()
        lost = ask(bot, "ULOST")
        wait_until(lambda: primary.xlen(f"{NAMESPACE}:jobs") == 2, what="the second job on the old primary")
        killed = cluster.kill_primary()
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    assert redis_check(target)() is not None  # not ready while no primary is named
    cluster.wait_failover()
    promoted_s = time.monotonic() - killed

    assert final_text(bot, lost).startswith("I lost your question: my job queue")
    told_s = time.monotonic() - killed
    assert final_text(bot, kept).startswith(("Answer: ", "No answer in this passage"))  # queued before, kept
    kept_s = time.monotonic() - killed
    after = ask(bot, "UAFTER")
    assert final_text(bot, after).startswith(("Answer: ", "No answer in this passage"))
    answered_s = time.monotonic() - killed
    print(f"\nfailover: replica promoted {promoted_s:.1f} s after the SIGKILL; lost question told at "
          f"{told_s:.1f} s; the question queued before answered at {kept_s:.1f} s; a new one answered at "
          f"{answered_s:.1f} s")

    assert worker.alive  # the same processes, never restarted
    assert redis_check(target)() is None
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.env['QA_METRICS_PORT']}/readyz", timeout=10) as page:
        assert page.status == 200
    [up] = [m for m in QueueCollector(JobQueue(target.client(5), NAMESPACE)).collect() if m.name == "qa_redis_up"]
    assert up.samples[0].value == 1
    for channel in (kept, lost, after):  # one final message each, never a second
        assert len([c for c in bot.fake.calls("chat.update", channel=channel) if c.status == 200]) == 1
    assert "Redis at" in worker.log() and "Traceback" not in worker.log()
    with pytest.raises(redis.ConnectionError):
        cluster.client(cluster.primary).ping()  # the old primary is gone for good
