"""Where Redis is, and the one place that makes a client for it (the bot, the worker, the tools).

Two ways to name it, read from the environment by `RedisTarget.from_env`:

- `REDIS_URL` alone: one server (`redis://[user:password@]host:port/db`, `rediss://` for TLS).
- `REDIS_SENTINELS` (comma-separated `host:port`) and `REDIS_SENTINEL_MASTER` (the name the
  sentinels know the primary by): Redis Sentinel, which a production Redis with a replica and
  automatic failover runs. They win over REDIS_URL's host and port, while REDIS_URL still gives
  what the primary needs besides its address: its user and password, the database number and,
  with `rediss://`, TLS (its query options such as `ssl_ca_certs` included). The sentinels'
  own password (`requirepass` in sentinel.conf) is `REDIS_SENTINEL_PASSWORD`; TLS applies to
  them too.

Why redis-py's Sentinel pool and nothing of our own on top: its connections ask the sentinels
for the primary's address each time they connect, and drop themselves when the server they
talk to turns out to be a replica (READONLY, or a blocked read unblocked by a demotion). So after
a failover the next command of a loop that retries on `redis.RedisError` (the worker's, the
bot's background threads) reaches the new primary without a restart; until the sentinels have
promoted one, commands fail with ConnectionError and those loops back off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import OutOfMemoryError  # type: ignore[attr-defined]  # missing from types-redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from explain_core import defaults
from explain_core.errors import ConfigError, Unavailable
from explain_core.settings import Env


@dataclass(frozen=True)
class RedisTarget:
    """The Redis both processes share: `url` alone, or the primary `master` found through
    `sentinels` (see the module doc). `repr` hides the passwords."""

    url: str = defaults.REDIS_URL
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    sentinel_password: str | None = None

    def __repr__(self) -> str:
        return f"RedisTarget({self.where()})"

    @classmethod
    def from_env(cls, env: Env | None = None) -> RedisTarget:
        """REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD; a value
        that cannot work raises ConfigError naming the variable (one line at start-up)."""
        env = env or Env()
        url = env.text("REDIS_URL", defaults.REDIS_URL)
        try:
            parse_url(url)
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL is not a Redis URL ({exc}); e.g. redis://localhost:6379/0") from None
        raw = env.names("REDIS_SENTINELS")
        master = env.optional("REDIS_SENTINEL_MASTER") or ""
        if raw and not master:
            raise ConfigError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: name the primary as the "
                              "sentinels know it (the name in `sentinel monitor <name> ...`, often mymaster)")
        if master and not raw:
            raise ConfigError("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not: list the sentinels as "
                              "host:port, comma-separated (e.g. sentinel-1:26379,sentinel-2:26379)")
        return cls(url=url, sentinels=tuple(_address(item) for item in raw), master=master,
                   sentinel_password=env.optional("REDIS_SENTINEL_PASSWORD"))

    def where(self) -> str:
        """Where the data is, for logs and messages: never a password."""
        options = parse_url(self.url)
        db = options.get("db", 0)
        if self.sentinels:
            return f"Sentinel master {self.master!r} via {','.join(f'{h}:{p}' for h, p in self.sentinels)}, db {db}"
        return f"{options.get('host', options.get('path', 'localhost'))}:{options.get('port', 6379)}/{db}"

    def client(self, timeout_s: float, *, connect_timeout_s: float | None = None, decode_responses: bool = True,
               health_check_interval: int = 0) -> redis.Redis:
        """A client whose every socket operation (the sentinels' too) gives up after `timeout_s`
        (connecting: `connect_timeout_s`, default the same), with str responses by default."""
        options: dict[str, Any] = dict(socket_timeout=timeout_s,
                                       socket_connect_timeout=connect_timeout_s or timeout_s,
                                       decode_responses=decode_responses, health_check_interval=health_check_interval)
        if not self.sentinels:
            return redis.Redis.from_url(self.url, **options)
        primary = parse_url(self.url)
        for unused in ("host", "port", "path"):  # the sentinels say where the primary is
            primary.pop(unused, None)
        tls = primary.pop("connection_class", None) is SSLConnection
        sentinel_options = {"socket_timeout": timeout_s, "socket_connect_timeout": connect_timeout_s or timeout_s,
                            "password": self.sentinel_password,
                            **({"ssl": True, **{k: v for k, v in primary.items() if k.startswith("ssl_")}}
                               if tls else {})}
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=sentinel_options)
        return sentinel.master_for(self.master, **{**options, **primary, **({"ssl": True} if tls else {})})


# Redis refused the command before running it: a write it surely did not make (a Lua script is refused
# at its first write, before it has written anything).
WRITES_REFUSED = ("redis_full", "redis_read_only", "redis_cannot_save")


def unavailable(exc: redis.RedisError) -> Unavailable:
    """What to tell a person whose question met `exc`: Redis out of reach, or refusing writes,
    and why (see `Unavailable`). Through Sentinel a read-only replica reads as out of reach: the
    connection drops itself to find the new primary (module doc)."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return Unavailable()
    if isinstance(exc, OutOfMemoryError):  # Redis' OOM reply; redis-py drops the code from the message
        return Unavailable("redis_full")
    if isinstance(exc, redis.ReadOnlyError):
        return Unavailable("redis_read_only")
    if str(exc).startswith("MISCONF"):  # no class of its own
        return Unavailable("redis_cannot_save")
    return Unavailable("redis_refused")


def describe(client: redis.Redis) -> str:
    """Where `client` connects, for logs (host:port/db, or the Sentinel master's name): never
    its URL, which may hold a password."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        return f"Sentinel master {pool.service_name!r} db {kwargs.get('db', 0)}"
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}/{kwargs.get('db', 0)}"


def _address(item: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port`; the port defaults to Sentinel's 26379) of one sentinel."""
    host, colon, port = item.rpartition(":")
    if not colon or "]" in port:
        host, port = item, str(defaults.SENTINEL_PORT)
    if ":" in host and not host.startswith("["):
        raise ConfigError(f"REDIS_SENTINELS has {item!r}: write an IPv6 address in brackets, [::1]:26379")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"REDIS_SENTINELS has {item!r}, which is not host:port (e.g. sentinel-1:26379)")
    return host, int(port)
