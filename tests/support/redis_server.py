"""A private `redis-server` on a free loopback port, for tests that kill or restart Redis, and
a Sentinel-managed pair (a primary, its replica, three sentinels) for tests of a failover.

Tests that only need a queue use the machine's Redis through `redis_url`; tests about
Redis going away start their own so they never disturb anything else.
"""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process with its own port and data folder.

    `appendonly=True` makes it durable across `restart()`, which is what the queue
    promises to survive; without it a restart is a total loss by design.
    """

    def __init__(self, appendonly: bool = True, *, replica_of: int | None = None, options: tuple[str, ...] = (),
                 host: str = "127.0.0.1", wrap: tuple[str, ...] = (), primary_host: str | None = None) -> None:
        """`replica_of`: the primary's port (on `primary_host`, by default this server's host);
        `host`: the address it listens on; `wrap`: a command prefix it runs under (the soak's
        `ip netns exec <host>`, to run it on a test host of its own)."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.host = host
        self.wrap = wrap
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qa-redis-"))
        self.appendonly = appendonly
        self.replica_of = replica_of  # the primary's port
        self.primary_host = primary_host or host
        self.options = options  # more `--name value` arguments (e.g. a tiny maxmemory)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                *self.wrap, "redis-server", "--port", str(self.port), "--bind", self.host,
                "--protected-mode", "no",
                "--dir", str(self.dir), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always",
                *(("--replicaof", self.primary_host, str(self.replica_of)) if self.replica_of else ()),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host=self.host, port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class SentinelCluster:
    """A primary, its replica and three sentinels (quorum 2), all on loopback ports, as a
    production Redis with automatic failover runs (README, "Redis in production").

    The sentinels call a primary down after `down_after_ms` without an answer (production: 5 to
    30 s; here 1 s, so a failover takes a few seconds). No persistence: a failover is the loss
    being tested. `start` returns once every sentinel knows the replica and the other two
    sentinels, since before that no failover can happen."""

    MASTER = "qa-primary"

    def __init__(self, down_after_ms: int = 1000, failover_timeout_ms: int = 20_000, *, appendonly: bool = False,
                 hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
        """`hosts`: (address, command prefix) of the primary's, the replica's and the third
        sentinel's host (the soak's test hosts; a sentinel runs beside each server); loopback by default."""
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.appendonly = appendonly
        self.hosts = hosts or (("127.0.0.1", ()),) * 3
        self.primary = RedisServer(appendonly=appendonly, host=self.hosts[0][0], wrap=self.hosts[0][1])
        self.replica: RedisServer | None = None
        self.sentinel_ports: list[int] = [free_port() for _ in self.hosts]  # known before start: `env` names them
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="qa-sentinel-"))

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *([self.replica] if self.replica else [])]

    def start(self) -> SentinelCluster:
        self.primary.start()
        self.replica = RedisServer(appendonly=self.appendonly, replica_of=self.primary.port,
                                   primary_host=self.primary.host, host=self.hosts[1][0],
                                   wrap=self.hosts[1][1]).start()
        _wait(lambda: self.client(self.replica).info("replication")["master_link_status"] == "up", 15,
              "the replica to sync")
        for n, ((host, wrap), port) in enumerate(zip(self.hosts, self.sentinel_ports)):
            conf = self.dir / f"sentinel-{n}.conf"  # a sentinel rewrites its file: one each, writable
            conf.write_text(
                f"port {port}\nbind {host}\nprotected-mode no\ndir {self.dir}\nlogfile {self.dir}/sentinel-{n}.log\n"
                f"sentinel monitor {self.MASTER} {self.primary.host} {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.MASTER} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.MASTER} 1\n")
            self.sentinels.append(subprocess.Popen([*wrap, "redis-server", str(conf), "--sentinel"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def all_acquainted() -> bool:
            for host, port in self.sentinel_addresses:
                state = redis.Redis(host=host, port=port, socket_timeout=1).sentinel_master(self.MASTER)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
            return True

        _wait(all_acquainted, 30, "the sentinels to know each other and the replica")
        return self

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(host, port) for (host, _), port in zip(self.hosts, self.sentinel_ports)]

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the bot and the worker at this cluster (REDIS_URL's host is
        not used; its database is)."""
        return {"REDIS_URL": f"redis://{self.hosts[0][0]}/0",
                "REDIS_SENTINELS": ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses),
                "REDIS_SENTINEL_MASTER": self.MASTER}

    @staticmethod
    def client(server: RedisServer) -> redis.Redis:
        """A client of one server, not through the sentinels (to look at or to break it)."""
        return redis.Redis(host=server.host, port=server.port, socket_timeout=2, decode_responses=True)

    def master_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it now."""
        for host, port in self.sentinel_addresses:
            try:
                address = redis.Redis(host=host, port=port, socket_timeout=1).sentinel_get_master_addr_by_name(
                    self.MASTER)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def cut_replica(self) -> None:
        """From now until `kill_primary`, writes reach the primary only: the replica is stopped
        (SIGSTOP) and its link closed by the primary, so what the primary takes meanwhile is
        never sent to it, not even into its socket buffer. (A stopped replica alone would still
        find the writes in its socket when it resumes.)"""
        assert self.replica is not None and self.replica.proc is not None
        self.replica.proc.send_signal(signal.SIGSTOP)
        self.client(self.primary).client_kill_filter(_type="replica")

    def kill_primary(self) -> float:
        """SIGKILL the primary, let the replica go on, and return when the kill was done
        (time.monotonic): the sentinels promote the replica about `down_after_ms` later."""
        assert self.replica is not None and self.replica.proc is not None
        self.primary.stop(kill=True)
        killed = time.monotonic()
        self.replica.proc.send_signal(signal.SIGCONT)
        return killed

    def wait_failover(self, timeout: float = 30.0) -> RedisServer:
        """The replica, once every sentinel names it the primary and it says it is one."""
        assert self.replica is not None
        replica = self.replica

        def promoted() -> bool:
            named = all(redis.Redis(host=host, port=port, socket_timeout=1).sentinel_get_master_addr_by_name(
                self.MASTER)[1] in (replica.port, str(replica.port)) for host, port in self.sentinel_addresses)
            return named and self.client(replica).info("replication")["role"] == "master"

        _wait(promoted, timeout, "the sentinels to promote the replica")
        return replica

    def close(self) -> None:
        for proc in self.sentinels:
            proc.kill()
            proc.wait(timeout=10)
        for server in self.servers:
            server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
