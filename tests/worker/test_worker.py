"""The worker against a real Redis: real `python -m explain_core.worker` processes with tiny
models, killed, stopped and cut off from Redis; plus in-process checks of the paths that
never reach the model.

Starting a worker costs a TensorFlow import (seconds), so the processes are module-wide:
two plain workers ("qa" namespace) for the round trip, poison, restart and burst checks,
and two that pause after reading a batch ("pause" namespace) so that a test can kill or
stop one in the middle of a job.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from explain_core.ops import OpsServer
from explain_core.queue import PASSAGE_INLINE_BYTES, WORKER_GROUP, Job, JobOptions, JobQueue, JobResult, ReplyTo
from explain_core.worker import Answerer, Worker, WorkerConfig
from explain_core.worker.loop import MODEL_FAILED
from explain_core.worker.metrics import WorkerMetrics
from tests.support import ROOT
from tests.support.redis_server import RedisServer, free_port
from tests.support.worker_process import WorkerProcess

# xdist: the whole module runs in one test process, so the worker fleets start once.
pytestmark = pytest.mark.xdist_group("worker.test_worker")

RESULT_TIMEOUT_S = 180
# Long enough that the test sees the job in progress and acts; shorter than the visibility
# timeout of the pausing workers, so a paused job is never mistaken for a dead worker's.
PAUSE_S = 2.0
PAUSING_VISIBILITY_S = 5.0

PASSAGE = "Ada Lovelace lived in London, where she wrote the first published program."
QUESTION = "Where did Ada live?"
# Short enough for the "short" model (24 positions: 21 tokens with QUESTION), which fails on longer input.
SHORT_PASSAGE = "Ada lived in London."
LONG_PASSAGE = " ".join([PASSAGE] * 5)


@dataclass
class Fleet:
    server: RedisServer
    queue: JobQueue
    workers: list[WorkerProcess] = field(default_factory=list)

    def by_consumer(self, consumer: str) -> WorkerProcess:
        """The process behind a consumer name (which ends with its pid)."""
        pid = int(consumer.rsplit("-", 1)[1])
        return next(w for w in self.workers if w.pid == pid)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """One append-only Redis for the module, which the restart test restarts."""
    redis_server = RedisServer(appendonly=True).start()
    yield redis_server
    redis_server.close()


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint with a real defect: 24 position embeddings behind a tokenizer that
    allows 512 tokens. It answers short inputs and raises inside TensorFlow on longer ones,
    which makes jobs that fail every time (poison) without any fault injection."""
    from tests.support import tiny_models

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny_models, "MAX_POSITIONS", 24)
        return tiny_models.build_tiny_model("bert", tmp_path_factory.mktemp("short-bert"))


def _fleet(server: RedisServer, namespace: str, log_dir: Path, count: int, **env: str) -> Fleet:
    fleet = Fleet(server, JobQueue.connect(server.url, namespace))
    for i in range(count):
        fleet.workers.append(WorkerProcess(
            {"REDIS_URL": server.url, "QA_NAMESPACE": namespace, "QA_BLOCK_MS": "200",
             "QA_METRICS_PORT": str(free_port()), **env}, log_dir / f"{namespace}-{i}.log").start())
    for worker in fleet.workers:
        worker.wait_ready()
    return fleet


@pytest.fixture(scope="module")
def workers(server: RedisServer, tiny_model_dir: Path, short_model_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = _fleet(server, "qa", tmp_path_factory.mktemp("logs"), 2, QA_MODEL=str(tiny_model_dir),
                   QA_MODELS=f"{tiny_model_dir},{short_model_dir}", QA_VISIBILITY_TIMEOUT_S="60")
    yield fleet
    for worker in fleet.workers:
        worker.stop()


@pytest.fixture(scope="module")
def pausing(server: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = _fleet(server, "pause", tmp_path_factory.mktemp("logs"), 2, QA_MODEL=str(tiny_model_dir),
                   QA_WORKER_TEST_PAUSE_S=str(PAUSE_S), QA_VISIBILITY_TIMEOUT_S=str(PAUSING_VISIBILITY_S))
    yield fleet
    for worker in fleet.workers:
        worker.stop()


def collect(queue: JobQueue, keys: list[str]) -> dict[str, list[JobResult]]:
    """Read results (as the bot does) until every key has one and the jobs stream is empty,
    then drain what is left, so that a duplicate result would be seen."""
    got: dict[str, list[JobResult]] = {key: [] for key in keys}
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    drained = False
    while not drained:
        assert time.monotonic() < deadline, f"no result for {[k for k, v in got.items() if not v][:5]}"
        try:
            done = all(got.values()) and queue.depth() == 0
            entries = queue.read_results("bot", "tester", count=100, block_ms=10 if done else 200)
            for entry in entries:
                if entry.result.key in got:
                    got[entry.result.key].append(entry.result)
                queue.ack_result("bot", entry.entry_id)
            drained = done and not entries
        except redis.ConnectionError:  # the restart test takes Redis away for a moment
            time.sleep(0.1)
    return got


def one_each(got: dict[str, list[JobResult]]) -> dict[str, JobResult]:
    assert {key: len(results) for key, results in got.items() if len(results) != 1} == {}
    return {key: results[0] for key, results in got.items()}


def holder_of(fleet: Fleet, job_id: str) -> WorkerProcess:
    """The worker that has the job in hand (it is pending on its consumer)."""
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while True:
        rows = fleet.queue.redis.xpending_range(fleet.queue.keys.jobs, WORKER_GROUP, job_id, job_id, 1)
        if rows:
            return fleet.by_consumer(rows[0]["consumer"])
        assert time.monotonic() < deadline, "no worker took the job"
        time.sleep(0.01)


def new_key() -> str:
    return f"test:{uuid.uuid4().hex}"


def test_round_trip(workers: Fleet, tiny_model_dir: Path, short_model_dir: Path) -> None:
    queue = workers.queue
    answered_before = sum(w.metric('qa_worker_jobs_total{outcome="answered"}') for w in workers.workers)
    jobs = {
        "plain": (QUESTION, PASSAGE, JobOptions()),
        "large": (QUESTION, "Filler text about nothing in particular. " * 300 + PASSAGE,
                  JobOptions(method="grad_x_input")),
        "compare": (QUESTION, SHORT_PASSAGE, JobOptions(compare=True)),
        "empty": (QUESTION, "   ", JobOptions()),
        "foreign model": (QUESTION, PASSAGE, JobOptions(model="distilbert-base-uncased")),
        "bad method": (QUESTION, PASSAGE, JobOptions(method="telepathy")),
    }
    assert len(jobs["large"][1]) > PASSAGE_INLINE_BYTES
    keys = {name: new_key() for name in jobs}
    enqueued = {name: queue.enqueue(keys[name], question, passage, options, ReplyTo(channel=name))
                for name, (question, passage, options) in jobs.items()}
    assert queue.enqueue(keys["plain"], QUESTION, PASSAGE, JobOptions(), ReplyTo()).duplicate

    results = one_each(collect(queue, list(keys.values())))
    by_name = {name: results[keys[name]] for name in jobs}
    for name in ("plain", "large", "compare"):
        result, passage = by_name[name], jobs[name][1]
        assert result.ok and result.error is None, (name, result.error)
        assert result.reply_to == ReplyTo(channel=name) and result.job_id == enqueued[name].job_id
        assert len(result.answers) == len(result.images)
        for answer, image in zip(result.answers, result.images):
            assert answer.answer in passage and answer.model == image.model
            assert image.png.startswith(b"\x89PNG\r\n\x1a\n") and image.alt_text
        assert result.timings_ms["compute_ms"] > 0
    assert by_name["large"].answers[0].method == "grad_x_input" and by_name["large"].answers[0].windows > 1
    assert [a.model for a in by_name["compare"].answers] == [str(tiny_model_dir), str(short_model_dir)]
    assert {name: by_name[name].error.code for name in ("empty", "foreign model", "bad method")} == {
        "empty": "empty_passage", "foreign model": "unknown_model", "bad method": "unknown_method"}
    assert "distilbert-base-uncased" in by_name["foreign model"].error.message
    answered = sum(w.metric('qa_worker_jobs_total{outcome="answered"}') for w in workers.workers)
    assert answered - answered_before == 3
    assert workers.workers[0].metric("qa_worker_queue_depth") == 0
    assert workers.workers[0].metric("process_resident_memory_bytes") > 0


def test_poison_job_is_dead_lettered_at_once_without_its_passage(workers: Fleet, short_model_dir: Path) -> None:
    """The model fails the same way on the same input: retrying would only make the asker wait."""
    queue = workers.queue
    poison, healthy = new_key(), new_key()
    retried_before = sum(w.metric('qa_worker_jobs_total{outcome="retried"}') for w in workers.workers)
    job_id = queue.enqueue(poison, QUESTION, LONG_PASSAGE, JobOptions(model=str(short_model_dir)), ReplyTo()).job_id
    queue.enqueue(healthy, QUESTION, PASSAGE, JobOptions(), ReplyTo())
    results = one_each(collect(queue, [poison, healthy]))
    assert results[healthy].ok  # the worker survived it
    assert results[poison].error.code == "model_failed"
    assert results[poison].error.message == MODEL_FAILED
    (dead,) = [d for d in queue.dead_letters() if d.job_id == job_id]
    assert dead.attempts == 1 and dead.error.code == "model_failed"
    assert LONG_PASSAGE not in dead.payload and f'"passage_chars": {len(LONG_PASSAGE)}' in dead.payload
    logs = "".join(w.log() for w in workers.workers)
    assert f"job {job_id} failed on delivery 1 of 3; dead-lettering it" in logs
    assert sum(w.metric('qa_worker_jobs_total{outcome="retried"}') for w in workers.workers) == retried_before


@pytest.mark.slow
def test_worker_survives_redis_refusing_writes(pausing: Fleet) -> None:
    """Every Redis error reply (out of memory, read-only replica, a flushed script cache)
    makes the worker back off and carry on; the job in hand is answered once Redis takes
    writes again, never lost and never twice."""
    queue, admin = pausing.queue, redis.Redis(port=pausing.server.port)
    refusals = {
        "OutOfMemoryError": (lambda: admin.config_set("maxmemory", 1), lambda: admin.config_set("maxmemory", 0)),
        "ReadOnlyError": (lambda: admin.replicaof("127.0.0.1", free_port()), lambda: admin.replicaof("NO", "ONE")),
    }
    for name, (refuse, allow) in refusals.items():
        key = new_key()
        job_id = queue.enqueue(key, QUESTION, PASSAGE, JobOptions(), ReplyTo()).job_id
        worker = holder_of(pausing, job_id)
        refuse()
        admin.script_flush()  # a NOSCRIPT on the next call, too
        deadline = time.monotonic() + PAUSE_S + 30
        while f"unavailable or refused ({name}" not in worker.log():
            assert time.monotonic() < deadline, f"the worker never met the {name} refusal"
            time.sleep(0.1)
        time.sleep(1.0)  # it keeps backing off rather than exiting
        assert all(w.proc.poll() is None for w in pausing.workers), name
        allow()
        assert one_each(collect(queue, [key]))[key].ok, name
    assert all(w.proc.poll() is None for w in pausing.workers)


def test_job_whose_workers_kept_dying_is_dead_lettered(workers: Fleet) -> None:
    """A job that kills every worker that takes it is never retried a fourth time."""
    queue = workers.queue
    key = new_key()
    job = Job(key=key, question=QUESTION, options=JobOptions(), reply_to=ReplyTo(), enqueued_at=time.time(),
              passage=PASSAGE)
    # Delivered to a worker that died, in one transaction with its arrival so that no live
    # worker sees it as new; then twice more (XCLAIM), the last time an hour ago.
    tx = queue.redis.pipeline(transaction=True)
    tx.xadd(queue.keys.jobs, {"job": job.to_json()})
    tx.xreadgroup(WORKER_GROUP, "ghost", {queue.keys.jobs: ">"}, count=1)
    job_id = tx.execute()[0]
    for _ in range(2):
        queue.redis.xclaim(queue.keys.jobs, WORKER_GROUP, "ghost", 0, [job_id], idle=3_600_000)
    result = one_each(collect(queue, [key]))[key]
    assert result.error.code == "model_failed"
    (dead,) = [d for d in queue.dead_letters() if d.job_id == job_id]
    assert dead.attempts == 4  # the reclaim was the fourth delivery: refused, not computed


def test_redis_restart_loses_no_job(workers: Fleet, server: RedisServer) -> None:
    queue = workers.queue
    seen = [len(w.log()) for w in workers.workers]  # other tests' outages are not this one's
    keys = [new_key() for _ in range(60)]
    for key in keys[:40]:
        queue.enqueue(key, QUESTION, PASSAGE, JobOptions(), ReplyTo())
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while queue.depth() > 30:  # the workers are in the middle of the stream
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.restart(down_seconds=1.0)
    for key in keys[40:]:
        queue.enqueue(key, QUESTION, PASSAGE, JobOptions(), ReplyTo())
    results = one_each(collect(queue, keys))
    assert all(r.ok for r in results.values())
    # Logged once per outage by each worker that noticed it (one busy computing through the
    # whole outage may only meet a reconnect that redis-py does by itself).
    logs = [w.log()[start:] for w, start in zip(workers.workers, seen)]
    noticed = [log.count("is unavailable") for log in logs]
    assert max(noticed) == 1 and all(n <= 1 for n in noticed), noticed
    assert sum("Redis is back after" in log for log in logs) == sum(noticed)


def test_burst_of_200_jobs_is_answered_exactly_once(workers: Fleet) -> None:
    queue = workers.queue
    before = [w.metric('qa_worker_jobs_total{outcome="answered"}') for w in workers.workers]
    keys = [new_key() for _ in range(200)]
    for i, key in enumerate(keys):
        queue.enqueue(key, f"Who wrote program number {i}?", PASSAGE, JobOptions(), ReplyTo(thread_ts=str(i)))
    results = one_each(collect(queue, keys))
    assert [results[key].reply_to.thread_ts for key in keys] == [str(i) for i in range(200)]
    assert all(r.ok for r in results.values())
    shares = [w.metric('qa_worker_jobs_total{outcome="answered"}') - b for w, b in zip(workers.workers, before)]
    assert sum(shares) == 200 and min(shares) > 0, shares  # both workers took part
    assert max(r.timings_ms["batch"] for r in results.values()) > 1  # jobs were batched


def test_killed_worker_job_is_completed_by_another(pausing: Fleet) -> None:
    queue = pausing.queue
    key = new_key()
    job_id = queue.enqueue(key, QUESTION, PASSAGE, JobOptions(), ReplyTo()).job_id
    victim = holder_of(pausing, job_id)
    os.kill(victim.pid, signal.SIGKILL)
    victim.proc.wait()
    pending = queue.redis.xpending_range(queue.keys.jobs, WORKER_GROUP, job_id, job_id, 1)
    assert pending, "the worker finished the job before it was killed: raise PAUSE_S"
    result = one_each(collect(queue, [key]))[key]
    assert result.ok
    assert queue.redis.xpending(queue.keys.jobs, WORKER_GROUP)["pending"] == 0


def test_sigterm_finishes_the_job_in_hand(pausing: Fleet) -> None:
    queue = pausing.queue
    key = new_key()
    job_id = queue.enqueue(key, QUESTION, PASSAGE, JobOptions(), ReplyTo()).job_id
    worker = holder_of(pausing, job_id)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0
    assert "stopping after the jobs in hand" in worker.log()
    result = one_each(collect(queue, [key]))[key]
    assert result.ok and result.job_id == job_id
    assert queue.depth() == 0
    consumers = [c["name"] for c in queue.redis.xinfo_consumers(queue.keys.jobs, WORKER_GROUP)]
    assert f"{socket.gethostname()}-{worker.pid}" not in consumers  # it left the group on its way out


# -- in process: the paths that never reach the model, and the health check ---------------

@pytest.fixture()
def lone_worker(redis_url: str, namespace: str) -> Worker:
    config = WorkerConfig.from_env({"REDIS_URL": redis_url, "QA_NAMESPACE": namespace, "QA_BLOCK_MS": "10"})
    queue = JobQueue.connect(redis_url, namespace)
    return Worker(queue, Answerer(config.model), config)


def test_unreadable_job_is_dead_lettered_and_its_user_told(lone_worker: Worker) -> None:
    queue = lone_worker.queue
    queue.redis.xadd(queue.keys.jobs, {"job": '{"v": 99, "key": "future", "reply_to": {"channel": "C1"}}'})
    queue.redis.xadd(queue.keys.jobs, {"job": "not json at all"})
    lone_worker.step()
    (told,) = [entry.result for entry in queue.read_results("bot", "b", block_ms=10)]
    assert (told.key, told.reply_to, told.error.code) == ("future", ReplyTo(channel="C1"), "bad_job")
    assert [d.error.code for d in queue.dead_letters()] == ["bad_job", "bad_job"]
    assert queue.depth() == 0


def test_expired_passage_gives_an_error_result(lone_worker: Worker) -> None:
    queue = lone_worker.queue
    queue.enqueue("k", "q", "word " * PASSAGE_INLINE_BYTES, JobOptions(), ReplyTo(channel="C1"))
    for key in queue.redis.scan_iter(f"{queue.namespace}:passage:*"):
        queue.redis.delete(key)
    lone_worker.step()
    (entry,) = queue.read_results("bot", "b", block_ms=10)
    assert (entry.result.key, entry.result.error.code) == ("k", "passage_expired")
    assert queue.depth() == 0


def test_health_check(redis_url: str) -> None:
    """`--check` answers from Redis alone: exit 0 with the queue's state, 1 when Redis is away,
    and it never loads TensorFlow (it runs from a container's health probe)."""
    probe = ("import sys; from explain_core.worker import main; rc = main(['--check']); "
             "assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    for url, code, words in ((redis_url, 0, "ok: Redis at"), ("redis://127.0.0.1:1/0", 1, "unhealthy")):
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, "REDIS_URL": url},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stdout + done.stderr
        assert words in done.stdout
        assert code == 1 or "0 job(s) waiting, 0 in progress" in done.stdout


def test_bad_configuration_is_one_clear_line() -> None:
    done = subprocess.run([sys.executable, "-m", "explain_core.worker"], cwd=ROOT,
                          env={**os.environ, "QA_BATCH_SIZE": "many"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "qa-worker: QA_BATCH_SIZE='many' is not a valid int"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_metrics_listen_on_loopback_unless_told() -> None:
    """/metrics is unauthenticated: on 127.0.0.1 by default (not on every interface, as the
    Prometheus client's default would be), elsewhere only when QA_METRICS_HOST says so."""
    assert WorkerConfig.from_env({}).metrics_host == "127.0.0.1"
    told = WorkerConfig.from_env({"QA_METRICS_HOST": "127.0.0.2"}).metrics_host
    default_port, told_port = free_port(), free_port()
    servers = [OpsServer(WorkerMetrics().registry, {}).serve(default_port),
               OpsServer(WorkerMetrics().registry, {}).serve(told_port, told)]
    try:
        assert _answers("127.0.0.1", default_port) and not _answers("127.0.0.2", default_port)
        assert _answers("127.0.0.2", told_port) and not _answers("127.0.0.1", told_port)
    finally:
        for server in servers:
            server.close()
