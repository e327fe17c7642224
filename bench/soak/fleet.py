"""The soak's processes: one Redis (append-only), bots (Socket Mode and HTTP), workers, each on a host.

Every process is started as shipped (`qa-bot`'s entry, `python -m explain_core.worker`,
`redis-server`), with the soak's short bounds in its environment (`SOAK_ENV`). Each
incarnation's peak RSS (VmHWM) is sampled while it lives, so a process killed by a fault is
measured too.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
from redis.sentinel import Sentinel

from bench.soak.hosts import Host, Loopback, Network
from bot.intake.submit import LISTENER_RETRY_S
from tests.support import ROOT
from tests.support.bot_harness import ENTRY, SIGNING_SECRET
from tests.support.redis_server import RedisServer, SentinelCluster, free_port
from tests.support.slack_fake import BOT_TOKEN, SlackFake
from tests.support.socket_mode_fake import APP_TOKEN
from tests.support.worker_process import WorkerProcess

NAMESPACE = "soak"
# The soak's bounds, short so that a few minutes hold many deadlines and expiries (the documented
# defaults are 10 minutes to a day). `bound_s` below is derived from them.
SOAK_ENV = {
    "QA_REPLY_DEADLINE_S": "60",
    "QA_SLACK_RETRY_S": "30",
    "QA_DOC_CACHE_TTL_S": "30",
    "QA_VISIBILITY_TIMEOUT_S": "20",
    "QA_LOG_FORMAT": "text",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
DOWN_AFTER_MS = 5000  # sentinels: a primary silent this long is failed over (a 1-4 s restart is not)
SWEEP_INTERVAL_S = 5.0


def bound_s() -> float:
    """The bound on silence with the soak's settings: the placeholder's own retries (the intake's
    60 s), the reply deadline, a sweep, the final message's Slack retry window, and 60 s for a loaded
    machine's scheduling. (A question whose process died is told after the intake's grace, 120 s,
    a sweep and the same window: within it too.)"""
    return (LISTENER_RETRY_S + float(SOAK_ENV["QA_REPLY_DEADLINE_S"]) + SWEEP_INTERVAL_S
            + float(SOAK_ENV["QA_SLACK_RETRY_S"]) + 60.0)


def vm_hwm_mb(pid: int) -> float:
    """The peak resident set of `pid` so far, in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Peaks:
    """Peak RSS per process name, over all of its incarnations."""

    mb: dict[str, float] = field(default_factory=dict)

    def sample(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.mb[name] = max(self.mb.get(name, 0.0), vm_hwm_mb(pid))


@dataclass
class BotProcess:
    """One `qa-bot` process on `host`: Socket Mode (`port` None) or HTTP on `port`."""

    name: str
    host: Host
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host.ip}:{self.port}/slack/events"

    def start(self) -> BotProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*self.host.wrap, *ENTRY], cwd=ROOT, env={**os.environ, **self.env},
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def wait_ready(self, fake: SlackFake, timeout: float = 120.0) -> None:
        """HTTP: it answers (refuses an unsigned POST); Socket Mode: it opened a connection."""
        deadline = time.monotonic() + timeout
        links = len(fake.socket_mode.links()) if fake.socket_mode else 0
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()[-3000:]
            if self.port is not None:
                try:
                    if requests.post(self.url, timeout=2).status_code >= 400:
                        return
                except requests.RequestException:
                    pass
            elif fake.socket_mode is not None and len(fake.socket_mode.links()) > links:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready:\n{self.log_path.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Fleet:
    """Redis, the bots and the workers of one soak, on `network`'s hosts.

    On test hosts Redis runs as production should (README, "Redis in production"): a primary
    and its replica, both append-only, and three sentinels, on three hosts; every process
    finds the primary through the sentinels. On loopback (no namespaces) it is one server behind
    each process's fault proxy, and there is no failover to test."""

    def __init__(self, network: Network | Loopback, fake: SlackFake, model: Path, log_dir: Path,
                 workers: int = 3) -> None:
        self.network = network
        self.fake = fake
        self.log_dir = log_dir
        self.peaks = Peaks()
        self.cluster: SentinelCluster | None = None
        self.single: RedisServer | None = None
        if isinstance(network, Network):
            hosts = [network.add(name) for name in ("redis-a", "redis-b", "sentinel")]
            network.set_redis_hosts(hosts)
            self.cluster = SentinelCluster(down_after_ms=DOWN_AFTER_MS, appendonly=True,
                                           hosts=tuple((h.ip, h.wrap) for h in hosts))
        else:
            host = network.add("redis")
            self.single = RedisServer(appendonly=True)
            network.set_redis(host, self.single.port)
        self.bots: list[BotProcess] = []
        for name, http in (("bot-socket", False), ("bot-http", True)):
            host = network.add(name)
            env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake.api_url, "QA_NAMESPACE": NAMESPACE,
                   **self._redis_env(host), "QA_BOT_METRICS_PORT": "0", **SOAK_ENV}
            if http:
                env.update(BOT_MODE="http", PORT=str(free_port()), BIND_HOST="0.0.0.0",
                           SLACK_SIGNING_SECRET=SIGNING_SECRET)
            else:
                env.update(BOT_MODE="socket", SLACK_APP_TOKEN=APP_TOKEN)
            self.bots.append(BotProcess(name, host, env, log_dir / f"{name}.log",
                                        int(env["PORT"]) if http else None))
        self.workers: dict[str, tuple[Host, WorkerProcess]] = {}
        for i in range(1, workers + 1):
            host = network.add(f"worker{i}")
            worker = WorkerProcess.tiny("", NAMESPACE, model, log_dir, name=f"worker{i}", wrap=host.wrap,
                                        **self._redis_env(host), **SOAK_ENV)
            self.workers[f"worker{i}"] = (host, worker)

    def _redis_env(self, host: Host) -> dict[str, str]:
        if self.cluster is not None:
            return self.cluster.env
        assert self.single is not None
        return {"REDIS_URL": self.network.redis_url(host, self.single.port)}

    @property
    def can_fail_over(self) -> bool:
        return self.cluster is not None

    def servers(self) -> list[RedisServer]:
        return self.cluster.servers if self.cluster is not None else [self.single] if self.single else []

    def primary(self) -> RedisServer:
        """The server the sentinels name the primary now (the only one, on loopback)."""
        if self.cluster is None:
            assert self.single is not None
            return self.single
        port = self.cluster.master_port()
        return next((s for s in self.cluster.servers if s.port == port), self.cluster.primary)

    def admin(self) -> redis.Redis:
        """A client of the primary, wherever it is (through the sentinels), for the soak's own reads."""
        if self.cluster is None:
            assert self.single is not None
            return redis.Redis(host=self.single.host, port=self.single.port, socket_timeout=5,
                               socket_connect_timeout=5)
        sentinel = Sentinel(self.cluster.sentinel_addresses, socket_timeout=2)
        return sentinel.master_for(self.cluster.MASTER, socket_timeout=5, socket_connect_timeout=5)

    def fail_over(self, lost_s: float) -> None:
        """What a failover loses: the replica stops hearing the primary, the primary takes writes
        for `lost_s` more, then dies (SIGKILL); the sentinels promote the replica. The dead primary
        comes back as the new primary's replica (its extra writes dropped by the resync)."""
        assert self.cluster is not None and self.cluster.replica is not None
        self.sample()
        self.cluster.cut_replica()
        time.sleep(lost_s)
        self.cluster.kill_primary()
        promoted = self.cluster.wait_failover(timeout=90)
        old = self.cluster.primary
        promoted.replica_of = None
        old.replica_of, old.primary_host = promoted.port, promoted.host
        self.cluster.primary, self.cluster.replica = promoted, old
        old.start()

    @property
    def socket_bot(self) -> BotProcess:
        return self.bots[0]

    @property
    def http_bot(self) -> BotProcess:
        return self.bots[1]

    def start(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        else:
            assert self.single is not None
            self.single.start()
        for _, worker in self.workers.values():
            worker.start()
        for bot in self.bots:
            bot.start()
        for bot in self.bots:
            bot.wait_ready(self.fake)
        for _, worker in self.workers.values():
            worker.wait_ready()

    def pids(self) -> dict[str, int | None]:
        """Each process's pid now (None while it is down)."""
        pids: dict[str, int | None] = {}
        for n, server in enumerate(self.servers()):
            pids[f"redis-{'ab'[n]}" if self.cluster else "redis"] = server.proc.pid if server.proc else None
        for bot in self.bots:
            pids[bot.name] = bot.pid
        for name, (_, worker) in self.workers.items():
            pids[name] = worker.pid if worker.alive else None
        return pids

    def sample(self) -> None:
        for name, pid in self.pids().items():
            self.peaks.sample(name, pid)

    def close(self) -> None:
        """Stop everything (idempotent); then the network goes."""
        for bot in self.bots:
            bot.stop()
        for _, worker in self.workers.values():
            if worker.proc is not None:
                worker.proc.send_signal(signal.SIGCONT)
            worker.stop()
        if self.cluster is not None:
            self.cluster.close()
        elif self.single is not None:
            self.single.close()
