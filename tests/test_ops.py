"""explain_core.ops: the probes' answers and the log lines that follow a question."""
from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client import CollectorRegistry, Counter

from explain_core.errors import ConfigError
from explain_core.ops import TEXT_FORMAT, JsonFormatter, OpsServer, log_format, redis_check, step
from explain_core.queue import RedisTarget
from explain_core.settings import Env
from tests.support.redis_server import free_port


def logged(formatter: logging.Formatter) -> str:
    """What one step writes through `formatter`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.ops.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    step(logger, "queued", "command:T0:trig.1", "1700000000000-0", ahead=2)
    return stream.getvalue()


def test_a_step_is_one_text_line_with_the_key_and_the_job() -> None:
    line = logged(logging.Formatter(TEXT_FORMAT))
    assert line.count("\n") == 1
    assert line.rstrip().endswith(": queued key=command:T0:trig.1 job=1700000000000-0 ahead=2")


def test_a_step_is_one_json_object_with_the_key_and_the_job() -> None:
    line = logged(JsonFormatter())
    assert line.count("\n") == 1
    record = json.loads(line)
    assert (record["step"], record["key"], record["job"], record["ahead"]) == (
        "queued", "command:T0:trig.1", "1700000000000-0", 2)
    assert record["level"] == "INFO" and isinstance(record["pid"], int)


def test_the_log_format_is_text_or_json() -> None:
    assert log_format(Env({})) == "text"
    assert log_format(Env({"QA_LOG_FORMAT": "JSON"})) == "json"
    with pytest.raises(ConfigError, match="QA_LOG_FORMAT"):
        log_format(Env({"QA_LOG_FORMAT": "yaml"}))


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as page:
            return page.status, page.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_readyz_names_each_check_that_fails_and_metrics_shows_the_registry(redis_url: str) -> None:
    registry = CollectorRegistry()
    Counter("qa_test_things", "Things", registry=registry).inc()

    def broken() -> str | None:
        raise RuntimeError("a bug in a check")

    server = OpsServer(registry, {"redis": redis_check(RedisTarget(redis_url)), "broken": broken,
                                  "model": lambda: "loading"}).serve(free_port())
    try:
        status, body = get(server.port, "/readyz")
        assert status == 503
        assert json.loads(body) == {"status": "not ready", "checks": {
            "redis": "ok", "broken": "check failed: RuntimeError", "model": "loading"}}
        assert get(server.port, "/healthz") == (200, '{"status": "alive"}')
        assert "qa_test_things_total 1.0" in get(server.port, "/metrics")[1]
        assert get(server.port, "/") [0] == 404
    finally:
        server.close()
    ready = OpsServer(registry, {"redis": redis_check(RedisTarget(redis_url))}).serve(free_port())
    try:
        assert get(ready.port, "/readyz") == (200, '{"status": "ready", "checks": {"redis": "ok"}}')
    finally:
        ready.close()
