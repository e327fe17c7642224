"""Prometheus metrics of the worker, served on `QA_METRICS_PORT` when it is set.

The page is unauthenticated, so it listens on loopback unless `QA_METRICS_HOST` says
otherwise (a scraper in another container or host needs `0.0.0.0` or that interface).

Queue depth and the feedback votes are read from Redis at scrape time rather than sampled by
the work loop, so they are current even while the worker is busy with a long job (or has none
to do), and every worker reports the same totals of votes cast through any bot process.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from explain_core import defaults

# Seconds from enqueue to result: a cached hit is ~0.1 s, integrated gradients on a long
# passage can take a minute.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


class WorkerMetrics:
    """The worker's counters on their own registry (so tests and benchmarks can build several),
    with the process collector (RSS, CPU) since a model's memory is what an operator watches."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.jobs = Counter(
            "qa_worker_jobs", "Jobs handled, by outcome: answered, rejected (bad input), retried, dead_lettered",
            ["outcome"], registry=self.registry)
        self.latency = Histogram(
            "qa_worker_job_latency_seconds", "Time from enqueue to result written (queueing included)",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram(
            "qa_worker_batch_jobs", "Jobs answered together in one batch", buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry)
        self.depth = Gauge("qa_worker_queue_depth", "Jobs not finished (waiting or in progress)",
                           registry=self.registry)

    def watch_depth(self, depth: Callable[[], int]) -> None:
        """Report `depth()` at each scrape; NaN while Redis cannot be reached."""
        def read() -> float:
            try:
                return float(depth())
            except redis.RedisError:
                return math.nan

        self.depth.set_function(read)

    def watch_votes(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Report the feedback votes kept, by model and vote (`explain_core.queue.feedback`)."""
        self.registry.register(_Votes(counts))

    def serve(self, port: int, host: str = defaults.METRICS_HOST) -> WSGIServer:
        """Expose /metrics on `host`:`port` from a daemon thread; the server, for `shutdown()`."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


class _Votes(Collector):
    """`qa_feedback_votes{model, vote}` from Redis at each scrape; nothing while it is away."""

    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("qa_feedback_votes", "Feedback votes kept (one per person per answer), "
                                   "by model and vote: helpful or not_helpful", labels=["model", "vote"])
        try:
            counts = self._counts()
        except redis.RedisError:
            counts = {}
        for (model, vote), n in sorted(counts.items()):
            family.add_metric([model, vote], n)
        return [family]
