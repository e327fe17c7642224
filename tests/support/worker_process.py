"""A real `python -m explain_core.worker` subprocess for tests (TensorFlow, a tiny model).

Start-up (TensorFlow import + model load) is the slow part, so test modules start one and
reuse it; the worker logs " ready: " once it takes jobs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

READY_TIMEOUT_S = 300  # a TensorFlow import on a busy 2-core machine


@dataclass
class WorkerProcess:
    """One `python -m explain_core.worker` subprocess with its log file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    wrap: tuple[str, ...] = ()  # a command prefix (the soak's `ip netns exec <host>`)

    @classmethod
    def tiny(cls, redis_url: str, namespace: str, model: Path, log_dir: Path, *, models: tuple[Path, ...] = (),
             name: str = "worker", wrap: tuple[str, ...] = (), **env: str) -> WorkerProcess:
        """A worker of `namespace` answering with the tiny `model` (and comparing `models`), polling
        Redis every 200 ms so tests do not wait on it; `env` adds or overrides variables."""
        base = {"REDIS_URL": redis_url, "QA_NAMESPACE": namespace, "QA_MODEL": str(model), "QA_BLOCK_MS": "200"}
        if models:
            base["QA_MODELS"] = ",".join(map(str, models))
        return cls({**base, **env}, log_dir / f"{name}.log", wrap=wrap)

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*self.wrap, sys.executable, "-m", "explain_core.worker"], cwd=ROOT,
                                         env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def running(self) -> WorkerProcess:
        """Start the worker unless it runs, and wait until it has loaded its model."""
        if not self.alive:
            self.start().wait_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while " ready: " not in self.log():
            assert self.alive, f"worker exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"worker not ready:\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def metric(self, name: str) -> float:
        """A sample of the worker's /metrics page (0 if absent), over real HTTP."""
        port = self.env["QA_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            for line in page.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
