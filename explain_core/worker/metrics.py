"""Prometheus metrics of the worker, served with /healthz and /readyz (`explain_core.ops.OpsServer`)
on `QA_METRICS_PORT` when it is set.

The page is unauthenticated, so it listens on loopback unless `QA_METRICS_HOST` says
otherwise (a scraper in another container or host needs `0.0.0.0` or that interface).

Per model and method, a job's time is split into waiting (from enqueue to its result, less its
own pass: the queue, and other passes of its batch) and computing (the pass that answered it,
shared with the other jobs of its model and method in the batch), and each pass's size is
counted in jobs: what tells an operator whether to add workers (waits grow, passes stay small)
or to look at the model (passes are slow).

Queue depth and the feedback votes are read from Redis at scrape time rather than sampled by
the work loop, so they are current even while the worker is busy with a long job (or has none
to do), and every worker reports the same totals of votes cast through any bot process.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from explain_core.queue import Job, JobResult

# Seconds from enqueue to result: a cached hit is ~0.1 s, integrated gradients on a long
# passage can take a minute.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
# Seconds of one pass of the model over the jobs of a batch that share a model and a method.
COMPUTE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
PASS_BUCKETS = (1, 2, 4, 8, 16, 32)


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
        by_model = ["model", "method"]
        self.waiting = Histogram("qa_worker_wait_seconds", "From enqueue to the job's result, less its own pass, "
                                 "by model (`compare` for a comparison) and method", by_model,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.computing = Histogram("qa_worker_compute_seconds", "The pass that answered a job, by model and method "
                                   "(shared by the jobs of that pass)", by_model, buckets=COMPUTE_BUCKETS,
                                   registry=self.registry)
        self.pass_jobs = Histogram("qa_worker_pass_jobs", "Jobs a job's pass answered together, by model and method",
                                   by_model, buckets=PASS_BUCKETS, registry=self.registry)

    def answered(self, job: Job, result: JobResult, model: str) -> None:
        """A job's wait and pass, from the timings its result carries; `model`: the one it asked for."""
        labels = ("compare" if job.options.compare else model, job.options.method)
        timings = result.timings_ms
        if "compute_ms" not in timings:
            return  # refused before any pass
        self.waiting.labels(*labels).observe(max(0.0, timings.get("wait_ms", 0.0) - timings["compute_ms"]) / 1000)
        self.computing.labels(*labels).observe(timings["compute_ms"] / 1000)
        self.pass_jobs.labels(*labels).observe(timings.get("batch", 1))

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
