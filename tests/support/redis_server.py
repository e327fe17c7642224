"""A private `redis-server` on a free loopback port, for tests that kill or restart Redis.

Tests that only need a queue use the machine's Redis through `redis_url`; tests about
Redis going away start their own so they never disturb anything else.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
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

    def __init__(self, appendonly: bool = True, *, host: str = "127.0.0.1", wrap: tuple[str, ...] = ()) -> None:
        """`host`: the address it listens on; `wrap`: a command prefix it runs under (the soak's
        `ip netns exec <host>`, to run it on a test host of its own)."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.host = host
        self.wrap = wrap
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qa-redis-"))
        self.appendonly = appendonly
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
