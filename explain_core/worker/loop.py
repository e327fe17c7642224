"""`qa-worker`: the long-lived process that answers queued questions with the model.

One process loads the model once, reads jobs in small batches from the "workers" consumer
group, answers the jobs of a batch in shared forward passes, writes each result, and only
then acks the job (in one atomic step, see `JobQueue.finish`). What can go wrong and what
happens then:

- a job with bad input: an error result with the `InputError`'s code and message;
- a job on which the model raises: dead-lettered at once with an error result when the failure
  is deterministic (the same input would fail again); a transient one (out of memory, a
  resource busy) is retried at once on this worker (its Redis delivery count goes up), and
  after `QA_MAX_ATTEMPTS` deliveries dead-lettered;
- the worker dies mid-job: the job stays pending; after `QA_VISIBILITY_TIMEOUT_S` another
  worker reclaims it (and dead-letters it if it has already used up its deliveries);
- SIGTERM/SIGINT: the batch in hand is finished, written and acked, then the process exits;
- Redis goes away or refuses (any error reply: out of memory, read-only replica, ...): logged
  once, retried with backoff; computed results wait in memory until they can be written.
- a dead letter keeps the job without its passage (the question and where it came from), so
  no passage text outlives the job by more than its result.

Configuration is by environment (see `WorkerConfig.from_env`); `qa-worker --check` is a
health check that pings Redis and prints the queue's state without loading TensorFlow. With
`QA_METRICS_PORT` the worker serves /metrics, /healthz and /readyz (Redis answers, the model is
loaded) from its start, so a probe sees it loading; each job it takes and answers is one log
line with the question's key and the job id (`explain_core.ops.step`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence

import redis

from explain_core.codec import from_object
from explain_core.errors import ConfigError, InputError, SchemaError
from explain_core.ops import OpsServer, configure_logging, log_format, redis_check, step
from explain_core.queue import (
    DeadLetter,
    Finished,
    Job,
    JobEntry,
    JobError,
    JobQueue,
    JobResult,
    Progress,
    ReplyTo,
    WorkerInfo,
    consumer_name,
)
from explain_core.queue.feedback import Votes
from explain_core.settings import read_or_exit
from explain_core.worker.answerer import Answerer, Ready
from explain_core.worker.config import WorkerConfig
from explain_core.worker.metrics import WorkerMetrics

log = logging.getLogger("explain_core.worker")

MODEL_FAILED = ("the model could not answer this question about this passage (an internal error, logged for "
                "whoever runs this bot); rephrasing the question or shortening the passage may help")
# Failures worth another delivery: the same input may pass when memory or a device is free.
# Matched by class name so that this module need not import TensorFlow.
TRANSIENT_ERRORS = frozenset({"MemoryError", "OSError", "ResourceExhaustedError", "UnavailableError",
                              "AbortedError", "DeadlineExceededError"})
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
# How often a worker looks for jobs abandoned by dead workers (an XAUTOCLAIM: cheap), so a
# job waits at most the visibility timeout plus this once its worker is gone.
RECLAIM_EVERY_S = 1.0
DEAD_PAYLOAD_CHARS = 200


class Worker:
    """The loop around `Answerer`: read, compute, write-then-ack, survive failures."""

    def __init__(self, queue: JobQueue, answerer: Answerer, config: WorkerConfig,
                 metrics: WorkerMetrics | None = None) -> None:
        self.queue = queue
        self.answerer = answerer
        self.config = config
        self.metrics = metrics or WorkerMetrics()
        self.consumer = consumer_name()
        self._stop = threading.Event()
        self._retry: list[JobEntry] = []
        self._last_reclaim = 0.0
        self._down_since: float | None = None
        self._failures = 0
        self._info: WorkerInfo | None = None

    def request_stop(self, signum: int | None = None, _frame: object = None) -> None:
        """Finish the batch in hand, then leave the loop (the signal handler)."""
        if not self._stop.is_set():
            log.info("stopping after the jobs in hand (signal %s)", signum)
        self._stop.set()

    def run(self) -> None:
        """Work until `request_stop`; never raises for a job or for Redis being away."""
        while not self._stop.is_set():
            try:
                self.step()
                self._redis_back()
            except redis.RedisError as exc:
                self._redis_down(exc)

    def step(self) -> None:
        """Handle one batch: this worker's retries first, then reclaimed jobs, then new ones."""
        if self._info is None:
            self._info = self.answerer.info()
        self.queue.heartbeat(self.consumer, self.config.visibility_timeout_s, self._info)
        entries, self._retry = self._retry, []
        now = time.monotonic()
        if not entries and now - self._last_reclaim >= RECLAIM_EVERY_S:
            self._last_reclaim = now
            entries = self.queue.reclaim_jobs(self.consumer, int(self.config.visibility_timeout_s * 1000),
                                              self.config.batch_size)
            if entries:
                log.info("reclaimed %d job(s) left unfinished by another worker", len(entries))
        if not entries:
            entries = self.queue.read_jobs(self.consumer, self.config.batch_size, self.config.block_ms)
        if entries:
            self._handle(entries)

    def close(self) -> None:
        """Leave the consumer group (if this worker holds no job), so `--check` counts live workers."""
        try:
            self.queue.leave(self.consumer)
        except redis.RedisError as exc:
            log.warning("could not leave the consumer group at exit: %s", exc)

    def _handle(self, entries: list[JobEntry]) -> None:
        finished, ready = self._triage(entries)
        self._tell([Progress(item.job.key, "running") for _, item in ready])
        if ready:
            if self.config.test_pause_s:
                time.sleep(self.config.test_pause_s)
            self.metrics.batch_size.observe(len(ready))
        failed: list[JobEntry] = []
        answered = self.answerer.answer([item for _, item in ready], progress=lambda item, done, total: self._tell(
            [Progress(item.job.key, "reading", done, total)]))
        for (entry, item), outcome in zip(ready, answered):
            if isinstance(outcome, JobResult):
                self.metrics.answered(item.job, outcome, item.job.options.model or self.answerer.model)
                finished.append(Finished(entry.entry_id, outcome))
            elif entry.deliveries >= self.config.max_attempts or not transient(outcome):
                log.error("job %s failed on delivery %d of %d; dead-lettering it", entry.entry_id,
                          entry.deliveries, self.config.max_attempts, exc_info=outcome)
                finished.append(self._dead(entry, (item.job.key, item.job.reply_to), "model_failed", MODEL_FAILED))
            else:
                log.warning("job %s failed on delivery %d of %d, retrying: %r", entry.entry_id,
                            entry.deliveries, self.config.max_attempts, outcome)
                failed.append(entry)
        self._write(finished, {entry.entry_id: item.job.enqueued_at for entry, item in ready})
        for entry in failed:
            self.metrics.jobs.labels("retried").inc()
            again = self.queue.retry_job(self.consumer, entry)
            if again is not None:
                self._retry.append(again)

    def _triage(self, entries: list[JobEntry]) -> tuple[list[Finished], list[tuple[JobEntry, Ready]]]:
        """Split a batch into jobs finished without the model (unreadable, out of deliveries,
        passage expired) and jobs ready to compute."""
        finished: list[Finished] = []
        decoded: list[tuple[JobEntry, Job]] = []
        for entry in entries:
            try:
                job = Job.from_json(entry.payload)
            except SchemaError as exc:
                log.error("job %s cannot be read, dead-lettering it: %s", entry.entry_id, exc)
                finished.append(self._dead(entry, _recipient(entry.payload), "bad_job",
                                           "this request could not be read by the worker; please ask again"))
                continue
            if entry.deliveries > self.config.max_attempts:
                log.error("job %s was delivered %d times without finishing; dead-lettering it",
                          entry.entry_id, entry.deliveries)
                finished.append(self._dead(entry, (job.key, job.reply_to), "model_failed", MODEL_FAILED))
                continue
            step(log, "taken", job.key, entry.entry_id, deliveries=entry.deliveries)
            decoded.append((entry, job))
        ready: list[tuple[JobEntry, Ready]] = []
        for (entry, job), passage in zip(decoded, self.queue.passages([job for _, job in decoded])):
            if passage is None:
                finished.append(Finished(entry.entry_id, JobResult.failure(
                    entry.entry_id, job.key, job.reply_to, "passage_expired",
                    "the question waited too long and its passage expired; please ask again")))
            else:
                ready.append((entry, Ready(entry.entry_id, job, passage)))
        return finished, ready

    @staticmethod
    def _dead(entry: JobEntry, recipient: tuple[str, ReplyTo] | None, code: str, message: str) -> Finished:
        """A dead letter, plus an error result for the user when we know who asked."""
        result = JobResult.failure(entry.entry_id, *recipient, code, message) if recipient else None
        return Finished(entry.entry_id, result,
                        DeadLetter(entry.entry_id, _without_passage(entry.payload), JobError(code, message),
                                   entry.deliveries, time.time()))

    def _tell(self, events: list[Progress]) -> None:
        """Publish progress; a hint, so a Redis error costs the bots a status line and nothing else."""
        try:
            self.queue.publish_progress(events)
        except redis.RedisError as exc:
            log.debug("progress not published: %s", exc)

    def _write(self, finished: list[Finished], enqueued_at: Mapping[str, float]) -> None:
        """Write results and ack their jobs, waiting out a Redis outage (the results are
        already computed); on stop during an outage the jobs stay pending for another worker."""
        if not finished:
            return
        while True:
            try:
                written = self.queue.finish(finished)
                break
            except redis.RedisError as exc:
                if self._stop.is_set():
                    log.warning("stopping with %d result(s) unwritten; their jobs stay pending and will be redone",
                                len(finished))
                    return
                self._redis_down(exc)
        self._redis_back()
        now = time.time()
        for item, first in zip(finished, written):
            if not first:
                log.info("job %s already had its result (computed twice after a reclaim)", item.entry_id)
                continue
            outcome = "dead_lettered" if item.dead else "answered" if item.result and item.result.ok else "rejected"
            self.metrics.jobs.labels(outcome).inc()
            step(log, "answered", item.result.key if item.result else "-", item.entry_id, outcome=outcome,
                 error=item.result.error.code if item.result and item.result.error else "-")
            if item.entry_id in enqueued_at:
                self.metrics.latency.observe(max(0.0, now - enqueued_at[item.entry_id]))

    def _redis_down(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis at %s is unavailable or refused (%s: %s); retrying with backoff",
                        self.queue.where(), type(exc).__name__, exc)
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** self._failures)
        self._failures += 1
        self._stop.wait(delay)

    def _redis_back(self) -> None:
        if self._down_since is not None:
            log.info("Redis is back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
            self._failures = 0


def transient(exc: BaseException) -> bool:
    """Whether another delivery of the same job might succeed (see TRANSIENT_ERRORS)."""
    return any(cls.__name__ in TRANSIENT_ERRORS for cls in type(exc).__mro__)


def _without_passage(payload: str) -> str:
    """A job's payload as a dead letter keeps it: the passage's text replaced by its length. A
    payload that is not a JSON object is cut to its first `DEAD_PAYLOAD_CHARS` characters."""
    try:
        data = json.loads(payload)
    except ValueError:
        return payload[:DEAD_PAYLOAD_CHARS]
    if not isinstance(data, dict):
        return payload[:DEAD_PAYLOAD_CHARS]
    passage = data.pop("passage", None)
    if isinstance(passage, str):
        data["passage_chars"] = len(passage)
    return json.dumps(data)


def _recipient(payload: str) -> tuple[str, ReplyTo] | None:
    """The key and reply address of an unreadable job, if they are there, so its user can be told."""
    try:
        data = json.loads(payload)
        return str(data["key"]), from_object(ReplyTo, data["reply_to"], "reply address")
    except (ValueError, KeyError, TypeError):  # SchemaError is a ValueError
        return None


def check(queue: JobQueue) -> int:
    """Print the queue's state; 0 when Redis answers, 1 when it does not."""
    try:
        queue.redis.ping()
        stats = queue.stats()
    except redis.RedisError as exc:
        print(f"unhealthy: Redis at {queue.where()} is unavailable: {exc}")
        return 1
    print(f"ok: Redis at {queue.where()}, namespace {queue.namespace!r}: {stats.waiting} job(s) waiting, "
          f"{stats.in_progress} in progress, {stats.workers} worker(s) alive, "
          f"{stats.dead_letters} dead letter(s), {stats.results_waiting} result(s) not yet delivered")
    return 0


def download(config: WorkerConfig) -> int:
    """Load every configured model once, so that a first download happens in the foreground.

    Under a process manager stderr is a pipe, where huggingface_hub shows no progress bar,
    and a model that cannot be loaded would only show up in the worker's log; run before the
    service (as `make run` does), the download shows its progress and a model that cannot be
    had stops everything with one line. Models in the cache load without the network.
    """
    from explain_core.engine import load_model

    try:
        for name in dict.fromkeys((config.model, *config.compare_models)):
            load_model(name)
    except (InputError, ConfigError) as exc:
        print(f"qa-worker: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qa-worker", description="Answer queued questions with the QA model (configured by environment).")
    parser.add_argument("--check", action="store_true",
                        help="health check: ping Redis, print the queue's state, exit 0 (ok) or 1")
    parser.add_argument("--download", action="store_true",
                        help="load the configured models once, downloading any that is not in the HuggingFace "
                             "cache, then exit 0 (or 2 with one line); `make run` does this first")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # loading chatter is not for the worker's log
    configure_logging(read_or_exit("qa-worker", log_format))
    config = read_or_exit("qa-worker", WorkerConfig.from_env)
    if args.download:
        return download(config)
    queue = JobQueue.connect(config.redis, config.namespace)
    if args.check:
        return check(queue)
    metrics = WorkerMetrics()
    metrics.watch_depth(queue.depth)
    metrics.watch_votes(Votes(queue.redis, queue.keys).counts)
    loaded = threading.Event()
    if config.metrics_port:
        OpsServer(metrics.registry, {
            "redis": redis_check(config.redis),
            "model": lambda: None if loaded.is_set() else f"loading {config.model}",
        }).serve(config.metrics_port, config.metrics_host)
    answerer = Answerer(config.model, config.compare_models)
    worker = Worker(queue, answerer, config, metrics)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    try:
        answerer.warm_up()
    except (InputError, ConfigError) as exc:  # the model cannot be loaded, or QA_PRECISION is wrong
        print(f"qa-worker: {exc}", file=sys.stderr)
        return 2
    loaded.set()
    log.info("worker %s ready: model %s, batch %d, visibility timeout %.0f s, Redis at %s", worker.consumer,
             config.model, config.batch_size, config.visibility_timeout_s, queue.where())
    worker.run()
    worker.close()
    log.info("worker %s stopped", worker.consumer)
    return 0

