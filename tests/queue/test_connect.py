"""Where Redis is: REDIS_URL alone, or Sentinel with what a managed Redis needs (passwords, a
database number, TLS), read in one place; a bad value is a ConfigError naming its variable.
The failover itself, with real sentinels, is in tests/test_failover.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

from explain_core.errors import ConfigError
from explain_core.queue import JobQueue, RedisTarget
from explain_core.settings import Env
from scripts.run import redis_to_start

SENTINELS = {"REDIS_SENTINELS": "sentinel-1:26379, [fd00::2]:26380,sentinel-3", "REDIS_SENTINEL_MASTER": "mymaster"}


def test_sentinels_win_over_the_url_and_take_its_password_database_and_tls() -> None:
    target = RedisTarget.from_env(Env({**SENTINELS, "REDIS_URL": "rediss://app:s3cret@ignored:1/4?ssl_cert_reqs=none",
                                       "REDIS_SENTINEL_PASSWORD": "sentinel-pw"}))
    assert target.sentinels == (("sentinel-1", 26379), ("fd00::2", 26380), ("sentinel-3", 26379))
    client = target.client(2)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert pool.connection_class is SentinelManagedSSLConnection
    assert {k: pool.connection_kwargs[k] for k in ("username", "password", "db", "ssl_cert_reqs", "socket_timeout")} \
        == {"username": "app", "password": "s3cret", "db": 4, "ssl_cert_reqs": "none", "socket_timeout": 2}
    assert "host" not in pool.connection_kwargs  # the sentinels say where the primary is
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel.connection_class is SSLConnection
    assert (sentinel.connection_kwargs["password"], sentinel.connection_kwargs["ssl_cert_reqs"]) == (
        "sentinel-pw", "none")
    shown = f"{target!r} {JobQueue(client).where()}"
    assert "s3cret" not in shown and "sentinel-pw" not in shown and "mymaster" in shown


def test_without_sentinels_the_url_is_one_server() -> None:
    target = RedisTarget.from_env(Env({"REDIS_URL": "redis://:pw@10.0.0.5:6380/2"}))
    kwargs = target.client(1).connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("10.0.0.5", 6380, 2, "pw")
    assert repr(target) == "RedisTarget(10.0.0.5:6380/2)"
    plain = RedisTarget.from_env(Env({**SENTINELS}))
    assert plain.client(1).connection_pool.connection_class is SentinelManagedConnection


@pytest.mark.parametrize("variables, named", [
    ({"REDIS_SENTINELS": "a:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "mymaster"}, "REDIS_SENTINELS"),
    ({**SENTINELS, "REDIS_SENTINELS": "a:0"}, "REDIS_SENTINELS"),
    ({**SENTINELS, "REDIS_SENTINELS": "a:b"}, "REDIS_SENTINELS"),
    ({**SENTINELS, "REDIS_SENTINELS": "fd00::1:26379"}, "REDIS_SENTINELS"),
    ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
], ids=["no-master", "no-sentinels", "port-0", "port-word", "bare-ipv6", "not-redis"])
def test_a_bad_value_names_its_variable(variables: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RedisTarget.from_env(Env(variables))


def test_make_run_starts_no_redis_of_its_own_for_sentinel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert redis_to_start(RedisTarget.from_env(Env(SENTINELS)), tmp_path) is None
    assert "using Redis through Sentinel master 'mymaster'" in capsys.readouterr().out
