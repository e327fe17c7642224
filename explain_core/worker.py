"""`qa-worker`: the long-lived process that answers queued questions with the model.

One process loads the model once, reads jobs in small batches from the "workers" consumer
group, answers the jobs of a batch in shared forward passes, writes each result, and only
then acks the job (in one atomic step, see `JobQueue.finish`). What can go wrong and what
happens then:

- a job with bad input: an error result with the `InputError`'s code and message;
- a job on which the model raises: retried at once on this worker (its Redis delivery count
  goes up), and after `QA_MAX_ATTEMPTS` deliveries dead-lettered with an error result;
- the worker dies mid-job: the job stays pending; after `QA_VISIBILITY_TIMEOUT_S` another
  worker reclaims it (and dead-letters it if it has already used up its deliveries);
- SIGTERM/SIGINT: the batch in hand is finished, written and acked, then the process exits;
- Redis goes away: logged once, retried with backoff; computed results wait in memory.

Configuration is by environment (see `WorkerConfig.from_env`); `qa-worker --check` is a
health check that pings Redis and prints the queue's state without loading TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

import explain_core
from explain_core.errors import InputError
from explain_core.jobs import DeadLetter, Job, JobError, JobResult, ResultImage, SchemaError
from explain_core.metrics import WorkerMetrics
from explain_core.queue import DEFAULT_REDIS_URL, Finished, JobEntry, JobQueue
from explain_core.render import render_png
from explain_core.result import Explanation
from explain_core.settings import default_model
from explain_core.summary import summarize

if TYPE_CHECKING:  # the engine imports TensorFlow: only on first use, so `--check` stays light
    from explain_core.model import QAModel

log = logging.getLogger("explain_core.worker")

MODEL_FAILED = "the model failed on this input"
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
# How often a worker looks for jobs abandoned by dead workers (an XAUTOCLAIM: cheap), so a
# job waits at most the visibility timeout plus this once its worker is gone.
RECLAIM_EVERY_S = 1.0

Outcome = Explanation | InputError | Exception


@dataclass(frozen=True)
class WorkerConfig:
    """Settings read from the environment; see `from_env` for the names and defaults."""

    redis_url: str
    namespace: str
    model: str
    compare_models: tuple[str, ...]
    batch_size: int
    visibility_timeout_s: float
    max_attempts: int
    block_ms: int
    metrics_port: int | None
    test_pause_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "WorkerConfig":
        """REDIS_URL, QA_NAMESPACE (qa), QA_MODEL, QA_MODELS (comma-separated, the models of a
        comparison), QA_BATCH_SIZE (8), QA_VISIBILITY_TIMEOUT_S (120: must exceed the slowest
        job), QA_MAX_ATTEMPTS (3), QA_BLOCK_MS (1000: also how soon SIGTERM is noticed when
        idle), QA_METRICS_PORT (unset: no metrics server). The engine's QA_MODEL_CACHE caps
        how many models stay loaded.

        QA_WORKER_TEST_PAUSE_S (tests only) sleeps that long after reading a batch, before
        computing it, so that a test can kill or stop a worker in the middle of a job.
        Raises ValueError naming the variable when a value is not a valid number.
        """
        def number(name: str, default: float, kind: type = int, low: float = 0) -> float:
            raw = env.get(name, "").strip()
            try:
                value = kind(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
            if value < low:
                raise ValueError(f"{name} must be at least {low}, not {value}")
            return value

        port = int(number("QA_METRICS_PORT", 0, low=0))
        return cls(
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            namespace=env.get("QA_NAMESPACE") or "qa",
            model=env.get("QA_MODEL") or default_model(),
            compare_models=tuple(m.strip() for m in env.get("QA_MODELS", "").split(",") if m.strip()),
            batch_size=int(number("QA_BATCH_SIZE", 8, low=1)),
            visibility_timeout_s=number("QA_VISIBILITY_TIMEOUT_S", 120.0, float, low=0.1),
            max_attempts=int(number("QA_MAX_ATTEMPTS", 3, low=1)),
            block_ms=int(number("QA_BLOCK_MS", 1000, low=1)),
            metrics_port=port or None,
            test_pause_s=number("QA_WORKER_TEST_PAUSE_S", 0.0, float),
        )


@dataclass(frozen=True)
class Ready:
    """A job with its passage in hand, ready to compute."""

    job_id: str
    job: Job
    passage: str


class Answerer:
    """Jobs in, results out: the worker's computation without Redis (what bench measures alone).

    Jobs of one batch that share a model and a method go through `explain_batch` together;
    if that raises, they are answered one by one so that one poison job fails alone.
    Models come from the engine's `load_model`, which keeps them loaded (LRU, QA_MODEL_CACHE).
    Only the configured models are served: a job cannot make the worker fetch any checkpoint.
    Every answer carries its faithfulness scores (a few masked forward passes, batched), so
    each reply says how much the answer depends on the words the picture highlights.
    """

    def __init__(self, model: str, compare_models: Sequence[str] = (), batch: bool = True) -> None:
        self.model = model
        self.compare_models = tuple(compare_models)
        self.allowed = {model, *self.compare_models}
        self.batch = batch

    def warm_up(self) -> None:
        """Load the default model and trace its main graph, so that the first user does not
        wait for it (tracing takes seconds; the rarer multi-window graphs trace on first use)."""
        explain_core.explain("Is this a warm-up?", "This is a warm-up.", model=self.model)

    def answer(self, ready: Sequence[Ready]) -> list[JobResult | Exception]:
        """A result per job, or the exception that the model raised on it (to retry)."""
        slots: list[list[str]] = [self._models(item.job) for item in ready]
        groups: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for i, (item, models) in enumerate(zip(ready, slots)):
            for s, model in enumerate(models):
                groups[(model, item.job.options.method)].append((i, s))
        outcomes: dict[tuple[int, int], Outcome] = {}
        compute_ms: dict[int, float] = defaultdict(float)
        batch_size: dict[int, int] = defaultdict(int)
        for (model, method), members in groups.items():
            started = time.perf_counter()
            items = [(ready[i].job.question, ready[i].passage) for i, _ in members]
            for member, outcome in zip(members, self._run(model, method, items)):
                outcomes[member] = outcome
            elapsed = (time.perf_counter() - started) * 1000
            for i, _ in members:
                compute_ms[i] += elapsed
                batch_size[i] = max(batch_size[i], len(members))
        results: list[JobResult | Exception] = []
        for i, (item, models) in enumerate(zip(ready, slots)):
            timings = {"wait_ms": round(max(0.0, time.time() - item.job.enqueued_at) * 1000, 1),
                       "compute_ms": round(compute_ms[i], 1), "batch": batch_size[i]}
            results.append(self._result(item, [outcomes[(i, s)] for s in range(len(models))], timings))
        return results

    def _models(self, job: Job) -> list[str]:
        """The models a job asks for: every one of QA_MODELS for a comparison (the default
        model alone when QA_MODELS is unset), else the one it names or the default."""
        if job.options.compare:
            return list(self.compare_models) or [self.model]
        return [job.options.model or self.model]

    def _run(self, model: str, method: str, items: list[tuple[str, str]]) -> list[Outcome]:
        """One outcome per (question, passage), all with `model` and `method`."""
        if model not in self.allowed:
            served = ", ".join(sorted(self.allowed))
            return [InputError("unknown_model", f"this service does not offer the model '{model}'; "
                                                f"it offers: {served}")] * len(items)
        try:
            qa = explain_core.load_model(model)
        except Exception as exc:  # noqa: BLE001 - cannot load (InputError) or crashed loading: every job's
            return [exc] * len(items)
        if len(items) > 1 and self.batch:
            try:
                return list(explain_core.explain_batch(items, model=qa, method=method, faithfulness=True))
            except InputError as exc:  # an unknown method: every job's error
                return [exc] * len(items)
            except Exception as exc:  # noqa: BLE001 - find the job that broke the batch, one by one
                log.warning("a batch of %d failed (%r); answering its jobs one by one", len(items), exc)
        return [self._one(qa, question, passage, method) for question, passage in items]

    @staticmethod
    def _one(qa: QAModel, question: str, passage: str, method: str) -> Outcome:
        try:
            return explain_core.explain(question, passage, model=qa, method=method, faithfulness=True)
        except Exception as exc:  # noqa: BLE001 - a poison input must not kill the worker
            return exc

    @staticmethod
    def _result(item: Ready, outcomes: list[Outcome], timings: dict[str, float]) -> JobResult | Exception:
        failure = next((o for o in outcomes if isinstance(o, Exception) and not isinstance(o, InputError)), None)
        if failure is not None:
            return failure
        rejected = next((o for o in outcomes if isinstance(o, InputError)), None)
        if rejected is not None:
            return JobResult.failure(item.job_id, item.job.key, item.job.reply_to, rejected.code,
                                     rejected.message, timings)
        started = time.perf_counter()
        try:
            answers = [summarize(exp).to_dict() for exp in outcomes]
            images = []
            for exp in outcomes:
                picture = render_png(exp)
                images.append(ResultImage(picture.png, picture.alt_text, exp.model))
        except Exception as exc:  # noqa: BLE001 - a rendering bug is retried like a model failure
            return exc
        timings["render_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return JobResult(key=item.job.key, reply_to=item.job.reply_to, ok=True, answers=answers, images=images,
                         timings_ms=timings, job_id=item.job_id)


class Worker:
    """The loop around `Answerer`: read, compute, write-then-ack, survive failures."""

    def __init__(self, queue: JobQueue, answerer: Answerer, config: WorkerConfig,
                 metrics: WorkerMetrics | None = None) -> None:
        self.queue = queue
        self.answerer = answerer
        self.config = config
        self.metrics = metrics or WorkerMetrics()
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._stop = threading.Event()
        self._retry: list[JobEntry] = []
        self._last_reclaim = 0.0
        self._down_since: float | None = None
        self._failures = 0

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
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._redis_down(exc)

    def step(self) -> None:
        """Handle one batch: this worker's retries first, then reclaimed jobs, then new ones."""
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
        if ready:
            if self.config.test_pause_s:
                time.sleep(self.config.test_pause_s)
            self.metrics.batch_size.observe(len(ready))
        failed: list[JobEntry] = []
        for (entry, item), outcome in zip(ready, self.answerer.answer([item for _, item in ready])):
            if isinstance(outcome, JobResult):
                finished.append(Finished(entry.entry_id, outcome))
            elif entry.deliveries >= self.config.max_attempts:
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
    def _dead(entry: JobEntry, recipient: tuple[str, dict[str, Any]] | None, code: str, message: str) -> Finished:
        """A dead letter, plus an error result for the user when we know who asked."""
        result = JobResult.failure(entry.entry_id, *recipient, code, message) if recipient else None
        return Finished(entry.entry_id, result,
                        DeadLetter(entry.entry_id, entry.payload, JobError(code, message), entry.deliveries,
                                   time.time()))

    def _write(self, finished: list[Finished], enqueued_at: Mapping[str, float]) -> None:
        """Write results and ack their jobs, waiting out a Redis outage (the results are
        already computed); on stop during an outage the jobs stay pending for another worker."""
        if not finished:
            return
        while True:
            try:
                written = self.queue.finish(finished)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
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
            if item.entry_id in enqueued_at:
                self.metrics.latency.observe(max(0.0, now - enqueued_at[item.entry_id]))

    def _redis_down(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("Redis at %s is unavailable (%s); retrying with backoff", self.queue.where(), exc)
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** self._failures)
        self._failures += 1
        self._stop.wait(delay)

    def _redis_back(self) -> None:
        if self._down_since is not None:
            log.info("Redis is back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
            self._failures = 0


def _recipient(payload: str) -> tuple[str, dict[str, Any]] | None:
    """The key and reply_to of an unreadable job, if they are there, so its user can be told."""
    try:
        data = json.loads(payload)
        return str(data["key"]), dict(data["reply_to"])
    except (ValueError, KeyError, TypeError):
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
          f"{stats.in_progress} in progress, {stats.consumers} worker(s) registered, "
          f"{stats.dead_letters} dead letter(s), {stats.results_waiting} result(s) not yet delivered")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qa-worker", description="Answer queued questions with the QA model (configured by environment).")
    parser.add_argument("--check", action="store_true",
                        help="health check: ping Redis, print the queue's state, exit 0 (ok) or 1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = WorkerConfig.from_env()
    except ValueError as exc:
        print(f"qa-worker: {exc}", file=sys.stderr)
        return 2
    queue = JobQueue.from_url(config.redis_url, config.namespace)
    if args.check:
        return check(queue)
    metrics = WorkerMetrics()
    metrics.watch_depth(queue.depth)
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    answerer = Answerer(config.model, config.compare_models)
    worker = Worker(queue, answerer, config, metrics)
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    try:
        answerer.warm_up()
    except InputError as exc:
        print(f"qa-worker: {exc.message}", file=sys.stderr)
        return 2
    log.info("worker %s ready: model %s, batch %d, visibility timeout %.0f s, Redis at %s", worker.consumer,
             config.model, config.batch_size, config.visibility_timeout_s, queue.where())
    worker.run()
    worker.close()
    log.info("worker %s stopped", worker.consumer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
