"""One soak run: hosts, fleet, load, faults, drain, expiry, checks, report.

Everything the run makes (namespaces, processes, servers) is undone on the way out, whatever
the way out is: the normal end, an exception, SIGTERM/SIGINT/SIGHUP (turned into SystemExit
so `finally` runs), or interpreter exit (atexit).
"""
from __future__ import annotations

import atexit
import faulthandler
import json
import os
import random
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.soak import check, faults
from bench.soak.fleet import NAMESPACE, SOAK_ENV, Fleet, bound_s
from bench.soak.hosts import make_network
from bench.soak.load import People, Question, Slack
from bot.ui.blocks import ACTION_FEEDBACK, ACTION_OTHER_ANSWERS
from explain_core.queue import Keys
from tests.support.slack_fake import BOT_USER_ID, SlackFake
from tests.support.socket_mode_fake import SocketModeFake

EVENT_KINDS = ("mention_pasted", "mention_txt", "mention_md", "mention_pdf", "dm", "bad_file", "bad_pdf")
DUPLICATE_SHARE = 0.15  # events Slack delivers twice
CLICK_SHARE = 0.5  # answers a reader clicks a button of
# Peak RSS bounds per process (MB): generous, to catch growth without bound, not to measure.
RSS_BOUND_MB = {"redis": 300.0, "bot": 800.0, "worker": 2500.0}
MEMORY_SLACK_BYTES = 3_000_000  # Redis may end this far above its start (allocator, stream metadata)
TEXT_MARKER = re.compile(r"Zq\d+x")
# Kinds of key that may hold text, by their TTL (README, "What is kept"; Keys): the soak waits out
# the ones it shortens (QA_DOC_CACHE_TTL_S); the others it checks are set and no longer than documented.
SHORTENED = ("doc", "answer", "recent")
DOCUMENTED_TTL_S = {"reply": Keys.REPLY_TTL_S, "passage": Keys.PAYLOAD_TTL_S, "intake": Keys.REPLY_TTL_S,
                    "shortcut": Keys.STASH_TTL_S}


@dataclass
class Options:
    seed: int
    minutes: float
    rate: float
    log_dir: Path
    model: Path | None = None
    workers: int = 3
    json_path: Path | None = None
    long_chars: int = 12000
    loopback: bool = False  # no namespaces even where they can be made (the fallback, tested)


@dataclass
class Result:
    violations: int
    lines: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


class _Undo:
    """Undo steps, run once, newest first."""

    def __init__(self) -> None:
        self._steps: list[Any] = []
        self._lock = threading.Lock()

    def push(self, step: Any) -> None:
        self._steps.append(step)

    def __call__(self) -> None:
        with self._lock:
            while self._steps:
                step = self._steps.pop()
                try:
                    step()
                except Exception as exc:  # keep undoing the rest
                    print(f"soak: cleanup step failed: {exc!r}", flush=True)


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def tiny_model(cache: Path) -> Path:
    """The tests' tiny BERT checkpoint, built once into `cache` (tests/support/tiny_models.py)."""
    from filelock import FileLock

    from tests.support.tiny_models import build_tiny_model

    folder, done = cache / "tiny-bert", cache / "tiny-bert.done"
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / "tiny-bert.lock")):
        if not done.exists():
            build_tiny_model("bert", folder)
            done.touch()
    return folder


def run(options: Options) -> Result:
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: where every thread is
    undo = _Undo()
    atexit.register(undo)
    previous = {s: signal.signal(s, _raise_exit) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return _run(options, undo)
    finally:
        undo()
        for s, handler in previous.items():
            signal.signal(s, handler)
        atexit.unregister(undo)


def _run(options: Options, undo: _Undo) -> Result:
    rng = random.Random(options.seed)
    options.log_dir.mkdir(parents=True, exist_ok=True)
    model = options.model or tiny_model(Path.home() / ".cache" / "explain-qa-soak")
    network = make_network(f"qs{os.getpid() % 100000}", loopback=options.loopback)
    undo.push(network.close)
    fake = SlackFake(host=network.root_ip).start()
    undo.push(fake.close)
    fake.socket_mode = SocketModeFake(host=network.root_ip).start()
    undo.push(fake.socket_mode.close)
    fleet = Fleet(network, fake, model, options.log_dir, workers=options.workers)
    undo.push(fleet.close)
    print(f"soak: hosts {network.kind}; starting redis, {len(fleet.bots)} bots, {len(fleet.workers)} workers",
          flush=True)
    fleet.start()
    admin = fleet.admin()
    undo.push(admin.close)
    memory_start = int(admin.info("memory")["used_memory"])
    duration = options.minutes * 60
    planned = faults.plan(rng, duration, fleet, can_slow=network.can_slow)
    injector = faults.Injector(fleet, planned, admin)
    slack = Slack(fake, fleet.socket_bot, fleet.http_bot)
    people = People(rng, fake, slack, long_chars=options.long_chars)
    stop = threading.Event()
    players = ThreadPoolExecutor(max_workers=256, thread_name_prefix="person")
    undo.push(lambda: players.shutdown(wait=False, cancel_futures=True))
    sampler = threading.Thread(target=_sample, args=(fleet, stop), daemon=True)
    observer = threading.Thread(target=_observe, args=(people, fake, admin, players, options.seed, stop), daemon=True)
    sampler.start()
    observer.start()
    print(f"soak: load for {options.minutes:g} min at {options.rate:g}/s, {len(planned)} faults", flush=True)
    started, began = time.monotonic(), time.time()
    injector.start(started)
    at = 0.0
    while (at := at + rng.expovariate(options.rate)) < duration:
        kind, user = people.plan()[0]
        for q in people.ask(kind, user):
            via = rng.choice(("http", "socket"))
            duplicate = q.kind in EVENT_KINDS and rng.random() < DUPLICATE_SHARE
            delay = rng.uniform(0.2, 2.0)
            time.sleep(max(0.0, started + at - time.monotonic()))
            players.submit(people.play, q, via, duplicate, delay)
    load_s = time.monotonic() - started
    injector.join()
    print(f"soak: load done ({len(people.questions)} questions); draining", flush=True)
    _drain(people.questions, fake, bound_s())
    stop.set()
    observer.join()
    players.shutdown(wait=True)
    time.sleep(5)  # the last clicks' answers
    ttl = float(SOAK_ENV["QA_DOC_CACHE_TTL_S"])
    print(f"soak: waiting {ttl + 15:.0f} s for the text TTLs", flush=True)
    time.sleep(ttl + 15)
    leftovers = _text_keys(admin, [q.question for q in people.questions])
    memory_end = int(admin.info("memory")["used_memory"])
    fleet.sample()
    sampler.join()
    print("soak: checking", flush=True)
    verdict = check.check(people.questions, fake, check.Reference(model), bound_s())
    for name, peak in fleet.peaks.mb.items():
        role = "worker" if name.startswith("worker") else "bot" if name.startswith("bot") else "redis"
        if peak > RSS_BOUND_MB[role]:
            verdict.violations["memory"].append(0)
            verdict.stories.setdefault(0, []).append(f"VIOLATION memory: {name} peaked at {peak:.0f} MB "
                                                      f"> {RSS_BOUND_MB[role]:.0f} MB")
    if leftovers:
        verdict.violations["text_kept"].extend([0] * len(leftovers))
    kept, memory_after = _expire_kept(admin, ttl + 15)
    if memory_after > memory_start + MEMORY_SLACK_BYTES:
        verdict.violations["redis_memory"].append(0)
        verdict.stories.setdefault(0, []).append(
            f"VIOLATION redis_memory: {memory_after / 1e6:.2f} MB > {memory_start / 1e6:.2f} MB + "
            f"{MEMORY_SLACK_BYTES / 1e6:.0f} MB once the kept keys expired; what remains: {_remaining(admin)}")
    touched = _touched(planned, people.questions, verdict.finished)
    kinds: dict[str, int] = {}
    for fault in planned:
        kinds[fault.kind] = kinds.get(fault.kind, 0) + 1
    broken = [f"{f.kind}@{f.at_s:.0f}s: {f.error}" for f in planned if f.error or not f.started]
    if broken:  # a fault that did not happen is a soak that did not test it
        verdict.violations["fault_not_made"].extend([0] * len(broken))
    lines = check.report_lines(
        options.seed, verdict, network=network.kind, minutes=options.minutes, rate=options.rate,
        elapsed_s=load_s, faults=kinds, touched=touched, peaks=fleet.peaks.mb,
        redis_memory=(memory_start, memory_end), leftovers=leftovers,
        extra={"redis kept on purpose (longer documented TTLs, votes)": f"{kept:,} keys",
               "redis used_memory once they expire": f"{memory_after / 1e6:.2f} MB",
               "bound on silence": f"{bound_s():.0f} s (soak settings {_env_line()})",
               "faults not made": broken or "none", "load began": time.strftime("%H:%M:%S", time.gmtime(began))})
    print("\n".join(lines), flush=True)
    summary = {"seed": options.seed, "hosts": network.kind, "counts": dict(verdict.counts),
               "violations": {k: len(v) for k, v in verdict.violations.items()},
               "latency_placeholder": sorted(verdict.to_placeholder), "faults": kinds, "touched": touched,
               "peak_rss_mb": fleet.peaks.mb, "redis_memory": [memory_start, memory_end, memory_after]}
    if options.json_path is not None:
        summary.pop("latency_placeholder")
        options.json_path.write_text(json.dumps(summary, indent=2))
    return Result(sum(len(v) for v in verdict.violations.values()), lines, summary)


def _env_line() -> str:
    return " ".join(f"{k}={v}" for k, v in SOAK_ENV.items() if k.startswith("QA_") and k != "QA_LOG_FORMAT")


def _sample(fleet: Fleet, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        fleet.sample()


def _observe(people: People, fake: SlackFake, admin: redis.Redis, players: ThreadPoolExecutor, seed: int,
             stop: threading.Event) -> None:
    """Watch for answers: read each one's exact confidence from its answer record (while it lives),
    and have a reader click one of its buttons (which, and whether, drawn from the seed)."""
    keys = Keys(NAMESPACE)
    handled: set[int] = set()
    while not stop.wait(0.5):
        now = time.time()
        for q in list(people.questions):
            if q.qid in handled or (q.asked_at and now - q.asked_at > bound_s()):
                continue  # an answer later than the bound is a violation anyway: no clicks for it
            answers = [m for m in fake.messages_in(q.channel)
                       if m.get("user") == BOT_USER_ID and check.kind_of(str(m.get("text", ""))) == "answer"]
            if not answers:
                continue
            handled.add(q.qid)
            tag = ((answers[0].get("metadata") or {}).get("event_payload") or {}).get("job")
            try:
                record = admin.get(keys.answer(str(tag)))
                if record is not None:
                    q.score = float(json.loads(record)["score"])
            except (redis.RedisError, ValueError, KeyError):
                pass  # Redis restarting or cut off: the shown percent is checked instead
            choice = random.Random(seed * 1_000_003 + q.qid)
            if choice.random() < CLICK_SHARE and "No answer" not in str(answers[0].get("text")):
                action = choice.choice((ACTION_OTHER_ANSWERS, ACTION_FEEDBACK))
                players.submit(people.click, q, answers[0], action, choice.choice(("http", "socket")))


def _drain(questions: list[Question], fake: SlackFake, bound: float) -> None:
    """Wait until every question shows a final outcome, or the bound has passed since the last was asked."""
    deadline = max((q.asked_at for q in questions), default=time.time()) + bound
    while time.time() < deadline:
        record = check.read_record(fake, questions)
        open_ = [q for q in questions if (q.acked or record[q.channel].messages) and not record[q.channel].finals()]
        if not open_:
            return
        print(f"soak: {len(open_)} questions without an outcome yet (waiting up to {deadline - time.time():.0f} s)",
              flush=True)
        time.sleep(10)


def _expire_kept(admin: redis.Redis, waited_s: float) -> tuple[int, int]:
    """Let the keys Redis keeps on purpose past the soak's wait expire, as their TTLs would, and
    measure what Redis holds then (after the soak has read everything it checks): those whose
    documented TTL is longer (an hour or a day: outcome markers, reply records, dedup and once
    markers; `_text_keys` checks that none holds text past its kind's TTL) and the votes (kept for
    months). Deleting them frees what they hold and their share of Redis's key tables, which an
    estimate per key (MEMORY USAGE) leaves out; what remains must come back within
    MEMORY_SLACK_BYTES of the start: a key without a TTL, or anything left by a leak, still counts.
    Returns the keys deleted and used_memory once Redis has shrunk its tables (its cron does)."""
    keys = Keys(NAMESPACE)
    votes = {keys.votes, keys.votes_at, keys.votes_count}
    kept = [key for key in admin.scan_iter(f"{NAMESPACE}:*", count=500)
            if key.decode() in votes or admin.ttl(key) > waited_s]
    for first in range(0, len(kept), 500):
        admin.delete(*kept[first:first + 500])
    settled, memory = time.monotonic() + 10, int(admin.info("memory")["used_memory"])
    while time.monotonic() < settled:
        time.sleep(1)
        memory, before = int(admin.info("memory")["used_memory"]), memory
        if memory >= before:
            break
    return len(kept), memory


def _remaining(admin: redis.Redis) -> str:
    """What Redis still holds, by kind of key (the namespace's second part): keys and bytes, and
    its own overheads (replication backlog, clients, scripts), for a memory violation's story."""
    kinds: dict[str, list[int]] = {}
    for key in admin.scan_iter("*", count=500):
        kind = kinds.setdefault(key.decode().split(":")[1] if ":" in key.decode() else key.decode(), [0, 0])
        kind[0] += 1
        kind[1] += int(admin.memory_usage(key) or 0)
    stats = admin.memory_stats()
    overheads = {k: v for k, v in stats.items() if k.startswith(("overhead", "replication", "clients", "lua", "aof"))}
    return f"keys {kinds}; {overheads}"


def _text_keys(admin: redis.Redis, questions: list[str]) -> list[str]:
    """Keys of the soak's namespace that hold a passage or a question beyond their documented
    TTL: a key of a kind whose TTL the soak shortened (QA_DOC_CACHE_TTL_S) that still exists, or
    any other that has no TTL or a longer one than its kind's (Keys)."""
    found = []
    for key in admin.scan_iter(f"{NAMESPACE}:*", count=500):
        kind = admin.type(key).decode()
        reader = {"string": admin.get, "hash": admin.hgetall, "list": lambda k: admin.lrange(k, 0, -1),
                  "set": admin.smembers, "zset": lambda k: admin.zrange(k, 0, -1), "stream": admin.xrange}.get(kind)
        if reader is None:
            continue
        text = repr(reader(key))
        if not (TEXT_MARKER.search(text) or any(question in text for question in questions)):
            continue
        name = key.decode()
        prefix = name.split(":")[1]
        ttl = admin.ttl(key)
        documented = DOCUMENTED_TTL_S.get(prefix)
        if prefix in SHORTENED or documented is None or ttl < 0 or ttl > documented:
            found.append(f"{name} (ttl {ttl} s)")
    return found


def _touched(planned: list[faults.Fault], questions: list[Question], finished: dict[int, float]) -> dict[str, int]:
    """Per fault kind, the questions in flight while one of its faults was on."""
    touched: dict[str, set[int]] = {}
    for fault in planned:
        if not fault.started:
            continue
        end = max(fault.ended, fault.started)
        for q in questions:
            if q.asked_at and q.asked_at <= end and finished.get(q.qid, float("inf")) >= fault.started:
                touched.setdefault(fault.kind, set()).add(q.qid)
    return {k: len(v) for k, v in touched.items()}

