"""The faults, at seeded times: processes killed, stalled and restarted, Redis restarted, out of
memory or cut off, Slack failing, slow or rate-limiting, a Socket Mode connection recycled.

Each fault is an action and (for most) its undoing after a seeded duration; each runs in a
thread of its own at its time, so faults overlap as they would in life. The list of faults and
their times, targets and durations is drawn from the seed before the run starts.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from bench.soak.fleet import Fleet

KINDS = ("worker_kill", "bot_kill", "stall", "redis_restart", "partition_worker", "partition_bot", "slack_5xx",
         "slack_429", "slack_timeout", "slack_slow", "socket_disconnect", "redis_maxmemory", "slow_link", "failover")
SLACK_METHODS = ("chat.postMessage", "chat.update")
REDIS_KINDS = ("redis_restart", "failover", "redis_maxmemory")  # one at a time: each needs to know the primary


@dataclass
class Fault:
    kind: str
    at_s: float  # from the start of the load
    duration_s: float
    target: str
    started: float = 0.0  # time.time() when it began and ended (0: never ran)
    ended: float = 0.0
    error: str = ""


def plan(rng: random.Random, duration_s: float, fleet: Fleet, *, can_slow: bool, every_s: float = 40.0) -> list[Fault]:
    """Every kind at least once, more in a long run (one fault of some kind every `every_s` on
    average), at times within the first 80% of the load so that the drain sees them heal. A slow
    link and a failover need test hosts (namespaces)."""
    kinds = [k for k in KINDS if (can_slow or k != "slow_link") and (fleet.can_fail_over or k != "failover")]
    each = max(1, round(duration_s / every_s / len(kinds)))
    faults = [Fault(kind, rng.uniform(0.08, 0.8) * duration_s, _duration(rng, kind), _target(rng, kind, fleet))
              for kind in kinds for _ in range(each)]
    return sorted(faults, key=lambda f: f.at_s)


def _duration(rng: random.Random, kind: str) -> float:
    return {"stall": rng.uniform(5, 12), "partition_worker": rng.uniform(15, 30), "partition_bot": rng.uniform(15, 30),
            "slack_5xx": rng.uniform(5, 12), "redis_maxmemory": rng.uniform(5, 12), "slow_link": rng.uniform(10, 20),
            "redis_restart": rng.uniform(1, 4), "worker_kill": rng.uniform(1, 5), "failover": rng.uniform(0.5, 2),
            "bot_kill": rng.uniform(1, 4)}.get(kind, 0.0)


def _target(rng: random.Random, kind: str, fleet: Fleet) -> str:
    workers = sorted(fleet.workers)
    bots = [b.name for b in fleet.bots]
    if kind in ("worker_kill", "partition_worker", "slow_link"):
        return rng.choice(workers)
    if kind in ("bot_kill", "partition_bot"):
        return rng.choice(bots)
    if kind == "stall":
        return rng.choice(workers + bots)
    return "slack" if kind.startswith(("slack", "socket")) else "redis"


class Injector:
    """Runs the planned faults against `fleet` from `start` (time.monotonic())."""

    def __init__(self, fleet: Fleet, faults: list[Fault], admin: redis.Redis) -> None:
        self.fleet = fleet
        self.faults = faults
        self.admin = admin
        self._threads: list[threading.Thread] = []
        self._redis_lock = threading.Lock()

    def start(self, start: float) -> None:
        for fault in self.faults:
            thread = threading.Thread(target=self._run, args=(fault, start), daemon=True, name=f"fault-{fault.kind}")
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _run(self, fault: Fault, start: float) -> None:
        time.sleep(max(0.0, start + fault.at_s - time.monotonic()))
        with self._redis_lock if fault.kind in REDIS_KINDS else contextlib.nullcontext():
            fault.started = time.time()
            try:
                action, undo = self._steps(fault)
                action()
                time.sleep(fault.duration_s)
                undo()
            except Exception as exc:  # reported; a fault that could not be made is not a pass
                fault.error = repr(exc)
            fault.ended = time.time()

    def _steps(self, fault: Fault) -> tuple[Callable[[], None], Callable[[], None]]:
        fleet, kind, name = self.fleet, fault.kind, fault.target
        fake = fleet.fake
        nothing: Callable[[], None] = lambda: None  # noqa: E731 - the undo of a one-shot fault
        if kind == "worker_kill":
            host, worker = fleet.workers[name]

            def kill_worker() -> None:
                fleet.sample()
                assert worker.proc is not None
                worker.proc.send_signal(signal.SIGKILL)
                worker.proc.wait()
            return kill_worker, worker.start
        if kind == "bot_kill":
            bot = next(b for b in fleet.bots if b.name == name)

            def kill_bot() -> None:
                fleet.sample()
                bot.signal(signal.SIGKILL)
                assert bot.proc is not None
                bot.proc.wait()
            return kill_bot, bot.start
        if kind == "stall":
            pid = fleet.pids()[name]
            assert pid is not None, f"{name} is down"
            return (lambda: os.kill(pid, signal.SIGSTOP)), (lambda: _signal(pid, signal.SIGCONT))
        if kind == "redis_restart":
            server = fleet.primary()

            def kill_redis() -> None:
                fleet.sample()
                server.stop(kill=True)
            return kill_redis, lambda: server.start() and None
        if kind == "failover":  # the duration is how long the doomed primary takes writes alone
            return (lambda: fleet.fail_over(fault.duration_s)), nothing
        if kind in ("partition_worker", "partition_bot"):
            host = fleet.workers[name][0] if name in fleet.workers else next(b.host for b in fleet.bots
                                                                              if b.name == name)
            return (lambda: fleet.network.partition(host)), (lambda: fleet.network.heal(host))
        if kind == "slow_link":
            host = fleet.workers[name][0]
            return (lambda: fleet.network.slow(host)), (lambda: fleet.network.unslow(host))
        if kind == "slack_5xx":
            def outage() -> None:
                for method in SLACK_METHODS:
                    fake.fail_for(method, 503, fault.duration_s)
            return outage, nothing
        if kind == "slack_429":
            def limited() -> None:
                for method in SLACK_METHODS:
                    fake.fail_next(method, 429, retry_after=2, times=8)
            return limited, nothing
        if kind == "slack_timeout":  # landed, answered after the bot's 30 s timeout: it cannot know it landed
            def late() -> None:
                for method in SLACK_METHODS:
                    fake.answer_late(method, 35.0, times=2)
            return late, nothing
        if kind == "slack_slow":
            def slow() -> None:
                for method in SLACK_METHODS:
                    fake.delay_next(method, 2.5, times=10)
            return slow, nothing
        if kind == "socket_disconnect":
            assert fake.socket_mode is not None
            return (lambda: fake.socket_mode.disconnect() and None), nothing  # type: ignore[union-attr]
        if kind == "redis_maxmemory":
            def squeeze() -> None:
                used = int(self.admin.info("memory")["used_memory"])
                self.admin.config_set("maxmemory", used + 256 * 1024)
            return squeeze, lambda: self.admin.config_set("maxmemory", 0) and None
        raise ValueError(kind)


def _signal(pid: int, sig: int) -> None:
    """Signal `pid` unless another fault has killed it meanwhile."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
