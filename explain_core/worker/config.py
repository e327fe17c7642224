"""The worker's settings, read once at start-up from the environment.

Built on `explain_core.settings.Env`, so every variable has its default in
`explain_core.defaults` and a malformed value stops the worker with one line naming it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from explain_core import defaults, settings
from explain_core.queue.connect import RedisTarget
from explain_core.settings import Env


@dataclass(frozen=True)
class WorkerConfig:
    """What one qa-worker process needs; see `from_env` for the variables."""

    redis: RedisTarget
    namespace: str
    model: str
    compare_models: tuple[str, ...]
    batch_size: int
    visibility_timeout_s: float
    max_attempts: int
    block_ms: int
    metrics_port: int | None
    metrics_host: str
    test_pause_s: float

    def __repr__(self) -> str:  # the Redis URL may hold a password: RedisTarget's repr hides it
        return (f"WorkerConfig(namespace={self.namespace!r}, model={self.model!r}, batch_size={self.batch_size}, "
                f"redis={self.redis!r})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerConfig:
        """REDIS_URL (or Redis Sentinel: `RedisTarget.from_env`), QA_NAMESPACE, QA_MODEL, QA_MODELS
        (comma-separated, the models of a comparison), QA_BATCH_SIZE, QA_VISIBILITY_TIMEOUT_S (must exceed
        the slowest job),
        QA_MAX_ATTEMPTS, QA_BLOCK_MS (also how soon SIGTERM is noticed when idle),
        QA_METRICS_PORT (unset: no /metrics, /healthz, /readyz), QA_METRICS_HOST (the address it listens on,
        loopback by default); defaults in `explain_core.defaults`.
        The engine's QA_MODEL_CACHE caps how many models stay loaded.

        QA_WORKER_TEST_PAUSE_S (tests only) sleeps that long after reading a batch, before
        computing it, so that a test can kill or stop a worker in the middle of a job.
        Raises ConfigError naming the variable when a value is not valid.
        """
        env = Env(environ)
        return cls(
            redis=RedisTarget.from_env(env),
            namespace=settings.namespace(env),
            model=settings.default_model(env),
            compare_models=settings.compare_models(env),
            batch_size=env.integer("QA_BATCH_SIZE", defaults.BATCH_SIZE, low=1),
            visibility_timeout_s=env.number("QA_VISIBILITY_TIMEOUT_S", defaults.VISIBILITY_TIMEOUT_S, low=0.1),
            max_attempts=env.integer("QA_MAX_ATTEMPTS", defaults.MAX_ATTEMPTS, low=1),
            block_ms=env.integer("QA_BLOCK_MS", defaults.BLOCK_MS, low=1),
            metrics_port=env.integer("QA_METRICS_PORT", 0, low=0) or None,
            metrics_host=env.text("QA_METRICS_HOST", defaults.METRICS_HOST),
            test_pause_s=env.number("QA_WORKER_TEST_PAUSE_S", 0.0, low=0.0),
        )
