"""What an operator reads from either process: /metrics, /healthz, /readyz, and its log lines.

Shared by the bot and the worker so that both answer an orchestrator's probes the same way and
write the same log format. Nothing here knows Slack or the model: a process hands `OpsServer`
its registry and named readiness checks, and calls `step()` at each step of a question.

- `/healthz` answers 200 while the process serves at all (liveness: restart it if not).
- `/readyz` runs each check (each must be cheap and bounded: a ping with a 1 s timeout, a flag)
  and answers 200, or 503 naming what is not ready, as JSON.
- `/metrics` is Prometheus' text format of the registry.

The port is unauthenticated, so it listens on loopback unless told (`QA_METRICS_HOST`).

Log lines follow one question across processes: `step()` writes one line per step with the
question's key and the job id, as text (`key=... job=...`) or, with `QA_LOG_FORMAT=json`, as
one JSON object per line with `key` and `job` fields. Only ids, counts, codes and durations
go into a step: never a passage, a question's text, a token or a request body.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from explain_core import defaults
from explain_core.settings import Env

# A readiness check: None when ready, else a short reason (no secret, no user data).
Check = Callable[[], str | None]
PING_TIMEOUT_S = 1.0  # a probe must answer quickly, even when Redis hangs rather than refuses
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord's own attributes: everything else on a record came through `extra` (a step's fields).
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class OpsServer:
    """/metrics, /healthz and /readyz on one port, from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, checks: Mapping[str, Check]) -> None:
        self._metrics = make_wsgi_app(registry)
        self._checks = dict(checks)
        self._server: ThreadingWSGIServer | None = None

    def serve(self, port: int, host: str = defaults.METRICS_HOST) -> OpsServer:
        """Listen on `host`:`port` (0: a free port, see `port`); raises OSError if it is taken."""
        self._server = make_server(host, port, self._app, ThreadingWSGIServer, handler_class=_Quiet)
        threading.Thread(target=self._server.serve_forever, name="ops-server", daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def readiness(self) -> dict[str, str]:
        """Each check's answer: "ok" or why not. A check that raises counts as not ready."""
        answers = {}
        for name, check in self._checks.items():
            try:
                problem = check()
            except Exception as exc:  # noqa: BLE001 - a probe says what broke, it never crashes the server
                problem = f"check failed: {type(exc).__name__}"
            answers[name] = problem or "ok"
        return answers

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "alive"})
        if path == "/readyz":
            checks = self.readiness()
            ready = all(answer == "ok" for answer in checks.values())
            return _json(start_response, "200 OK" if ready else "503 Service Unavailable",
                         {"status": "ready" if ready else "not ready", "checks": checks})
        return _json(start_response, "404 Not Found", {"status": "not found"})


class _Quiet(WSGIRequestHandler):
    """No access log: a probe every few seconds would bury the lines that matter."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def _json(start_response: Callable[..., Any], status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Connects(Protocol):
    """Where Redis is (`explain_core.queue.RedisTarget`, which this shared module may not import)."""

    def client(self, timeout_s: float) -> redis.Redis: ...


def redis_check(target: Connects) -> Check:
    """A check that Redis answers a PING within `PING_TIMEOUT_S`, on a client of its own (so a
    probe never waits behind the process's pool, nor for a Redis that hangs). Through Sentinel,
    each sentinel asked has that long too, and the PING goes to whichever primary they name now,
    so the probe is ready again as soon as a failover is done."""
    client = target.client(PING_TIMEOUT_S)

    def check() -> str | None:
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"Redis unreachable ({type(exc).__name__})"
        return None

    return check


# -- logs ---------------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and a step's fields (`key`, `job`...)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                                "pid": record.process, "message": record.getMessage()}
        line.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_format(env: Env | None = None) -> str:
    """`QA_LOG_FORMAT`: "text" (default, for people) or "json" (for a log pipeline)."""
    return (env or Env()).choice("QA_LOG_FORMAT", defaults.LOG_FORMAT, LOG_FORMATS)


def configure_logging(fmt: str) -> None:
    """The process's one log handler (stderr), in `fmt`; replaces any handler set before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def step(logger: logging.Logger, name: str, key: str, job: str | None = None, **fields: object) -> None:
    """One line for one step of a question (received, placeholder, queued, taken, answered,
    delivered, outcome), with its key and job id; `fields` are ids, codes, counts or durations."""
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.info("%s key=%s job=%s%s", name, key, job or "-", f" {text}" if text else "",
                extra={"step": name, "key": key, "job": job, **fields})
