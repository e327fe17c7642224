"""The bot's background threads (the result consumer, the sweeper): they never die.

Each runs one round after another until it is stopped, pausing between rounds as it asks;
a Redis error (down, out of memory, read-only, NOSCRIPT...) backs it off and it carries on,
and any other failure is logged with its trace and the next round starts anyway, because a
dead thread would leave every later question without its reply.
"""
from __future__ import annotations

import logging
import threading
from typing import Self

import redis

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class Background:
    """A daemon thread around `round()`; subclasses set `name` and `pause_s` and write `round`."""

    name = "background"
    pause_s = 0.0  # wait between rounds (a round that blocks on Redis needs none)

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping  # the whole reply flow is closing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def round(self) -> object:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set() and not self._stopping.is_set():
            wait = self.pause_s
            try:
                self.round()
                backoff = FIRST_BACKOFF_S
            except redis.RedisError as exc:
                log.warning("%s: Redis error (%s); next round in %.1fs", self.name, exc, backoff)
                wait, backoff = backoff, min(backoff * 2, MAX_BACKOFF_S)
            except Exception:
                log.exception("%s failed; continuing", self.name)
                wait = max(wait, 1.0)
            self._stop.wait(wait)
