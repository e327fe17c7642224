"""The qa-worker process: configuration, the answerer (jobs in, results out), the Redis loop
(reads, retries, dead letters) and its Prometheus metrics. Imports the engine on first use.
"""
from explain_core.worker.answerer import Answerer, Ready
from explain_core.worker.config import WorkerConfig
from explain_core.worker.loop import Worker, main

__all__ = ["Answerer", "Ready", "Worker", "WorkerConfig", "main"]
