"""The bot's Prometheus metrics: what people asked, what each question ended as, how long they
waited, and how Slack answered.

The bot decides every outcome a person sees, so its counters tell the story the worker's cannot:
`qa_bot_questions_received_total{entry}` counts each question that reaches the intake
(`bot.intake.submit.Intake.submit`), and `qa_bot_outcomes_total{outcome, reason}` counts each
final outcome once, where it is decided: the outcome claim (`bot.outcome.tracking.Outcomes`,
SET NX, so exactly one process counts it) or, for a question refused before it had a claim,
the intake. On a quiet bot the two add up.

Several serving processes (HTTP mode, `WEB_CONCURRENCY` > 1) each count their own questions.
They use prometheus-client's multiprocess mode: `bot.app.main` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh folder before Hypercorn spawns them, each writes its
values there, and the main process serves the sum on the bot's one port. Per-process labels
were not used: every query would have to sum them away, and a restarted process would start
a new series. Gauges that describe the whole deployment (placeholders pending, held questions,
the queue, live workers) are read from Redis at scrape time by the serving process
(`QueueCollector`), so no process's share needs adding up and a restart loses nothing.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from explain_core.queue import JobQueue

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The first part of a job key names where the question came from (see the listeners).
ENTRY_POINTS = {"command": "slash_command", "view": "form", "event": "message", "another": "another_way",
                "compare": "compare"}
# Seconds from the question to its placeholder: Slack's ack budget is 3 s, a retried post 60 s.
PLACEHOLDER_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60)
# Seconds from the question to its final message: a cached answer, up to the reply deadline and past it.
FINAL_BUCKETS = (0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600, 1200)


class BotMetrics:
    """The counters of one bot process, on a registry of their own (tests build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter("qa_bot_questions_received", "Questions that reached the intake, by entry point",
                                ["entry"], registry=self.registry)
        self.outcomes = Counter(
            "qa_bot_outcomes", "Final outcomes, one per question: answered, no_answer, told_why (reason: the "
            "worker's code), refused (reason: why), lost (reason: lost or unqueued), deadline_passed",
            ["outcome", "reason"], registry=self.registry)
        self.to_placeholder = Histogram("qa_bot_placeholder_seconds", "From the question to its placeholder posted",
                                        buckets=PLACEHOLDER_BUCKETS, registry=self.registry)
        self.to_final = Histogram("qa_bot_final_message_seconds", "From the question to its final message shown, "
                                  "by outcome", ["outcome"], buckets=FINAL_BUCKETS, registry=self.registry)
        self.slack_calls = Counter(
            "qa_bot_slack_calls", "Every attempt of every Slack call the bot makes (Web API methods, file downloads "
            "as files.download, response_url posts), by method and result: ok, rate_limited, or the error "
            "(Slack's code, http_<status>, timeout, connection_error)", ["method", "result"], registry=self.registry)
        self.slack_retries = Counter("qa_bot_slack_retries", "Slack calls repeated after a transient failure, "
                                     "by method", ["method"], registry=self.registry)
        self.installs = Counter("qa_bot_installs", "Slack OAuth installs: ok, or why one failed (Bolt's reason; "
                                "other for anything else)", ["result"], registry=self.registry)
        self.uninstalls = Counter("qa_bot_uninstalls", "Workspaces forgotten, by Slack's event: app_uninstalled "
                                  "or tokens_revoked", ["event"], registry=self.registry)
        self.clicks = Counter("qa_bot_button_clicks", "Clicks on an answer's buttons, by action", ["action"],
                              registry=self.registry)

    def receive(self, key: str) -> None:
        self.received.labels(entry_point(key)).inc()

    def settle(self, outcome: str, reason: str = "") -> None:
        self.outcomes.labels(outcome, reason).inc()

    def shown(self, outcome: str, asked_at: float) -> None:
        """The final message of a question asked at `asked_at` (wall clock) is on screen."""
        if asked_at:
            self.to_final.labels(outcome).observe(max(0.0, time.time() - asked_at))


def entry_point(key: str) -> str:
    return ENTRY_POINTS.get(key.partition(":")[0], "other")


@functools.cache
def process_metrics() -> BotMetrics:
    """This process's metrics, which `bot.app.start` hands the services and `serving_registry` serves."""
    return BotMetrics()


@contextlib.contextmanager
def shared_between(processes: int) -> Iterator[None]:
    """Multiprocess mode for the serving processes started inside this block, when there are
    several: a fresh folder in `PROMETHEUS_MULTIPROC_DIR` (they inherit it, and prometheus-client
    reads it when they import it), removed afterwards. A folder the operator set is used as is."""
    if processes == 1 or os.environ.get(MULTIPROCESS_DIR):
        yield
        return
    folder = tempfile.mkdtemp(prefix="qa-bot-metrics-")
    os.environ[MULTIPROCESS_DIR] = folder
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(folder, ignore_errors=True)


def serving_registry(queue: JobQueue) -> CollectorRegistry:
    """What the bot's port shows: every serving process's counters (this one's, or in
    multiprocess mode all of them from their files), plus the Redis-side gauges."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = process_metrics().registry
        ProcessCollector(registry=registry)  # one process: its memory and CPU are the bot's
    registry.register(QueueCollector(queue))
    return registry


class QueueCollector(Collector):
    """Gauges of the deployment read from Redis at each scrape (see the module doc); only
    `qa_redis_up` 0 while Redis cannot be read, so a dashboard shows a gap, not a false zero."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = self._queue.stats()
            oldest = self._queue.oldest_age_s()
            held = self._queue.held()
            pending = self._queue.redis.zcard(self._queue.keys.replies)
        except redis.RedisError:
            yield GaugeMetricFamily("qa_redis_up", "1 when the bot could read Redis at this scrape", value=0)
            return
        yield GaugeMetricFamily("qa_redis_up", "1 when the bot could read Redis at this scrape", value=1)
        jobs = GaugeMetricFamily("qa_queue_jobs", "Jobs in the stream: waiting for a worker, or in progress",
                                 labels=["state"])
        jobs.add_metric(["waiting"], stats.waiting)
        jobs.add_metric(["in_progress"], stats.in_progress)
        yield jobs
        yield GaugeMetricFamily("qa_queue_oldest_job_age_seconds", "Age of the oldest unfinished job in the "
                                "stream (since it joined the stream); 0 when none", value=oldest)
        yield GaugeMetricFamily("qa_queue_live_workers", "Workers with a heartbeat within their visibility timeout",
                                value=stats.workers)
        yield GaugeMetricFamily("qa_queue_dead_letters", "Jobs in the dead-letter stream", value=stats.dead_letters)
        yield GaugeMetricFamily("qa_queue_results_waiting", "Results not yet delivered by a bot",
                                value=stats.results_waiting)
        yield GaugeMetricFamily("qa_bot_held_questions", "Questions waiting behind their asker's earlier one, "
                                "outside the stream", value=held)
        yield GaugeMetricFamily("qa_bot_pending_placeholders", "Placeholders awaiting their question's final "
                                "message, all bot processes", value=pending)
