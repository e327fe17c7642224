"""A user's first run: a hub model is downloaded once, and later starts ask the hub nothing;
without network, a model that is not cached fails at once with one line saying what to do,
and a cached one loads; TensorFlow's C++ start-up lines never reach the terminal of
`qa-explain` or `qa-worker`.

The console scripts run as subprocesses, as a user runs them, with the environment a user
has: no TF_CPP_MIN_LOG_LEVEL, no HF_HUB_OFFLINE (conftest sets both for the suite), and the
hub's address (HF_ENDPOINT) on a loopback port where nothing listens, so that every request
the code makes fails the way it does without network, and only on this machine.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.redis_server import free_port

BIN = Path(sys.executable).parent
# absl's format, TSL's format, and absl's preamble: what TensorFlow writes while it loads.
NATIVE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
                    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] )|absl::InitializeLog|oneDNN|cuda", re.M)
PASSAGE = "The Bell Rock Lighthouse was built by Robert Stevenson between 1807 and 1810."
# A bound on a hang, not a speed claim: huggingface_hub's retries took about 50 s here.
FAIL_WITHIN_S = 30


def _user_env(hf_home: Path, **extra: str) -> dict[str, str]:
    hidden = ("TF_CPP_MIN_LOG_LEVEL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_VERBOSITY", "QA_MODEL")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    return {**env, "HF_HOME": str(hf_home), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", **extra}


def _qa_explain(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([str(BIN / "qa-explain"), "-q", "Who built it?", "-p", PASSAGE, *args],
                          env=env, capture_output=True, text=True, timeout=180)
    return done, time.monotonic() - started


def _cached_like_the_hub(model_dir: Path, hf_home: Path, repo: str) -> None:
    """Lay `model_dir` out in the HuggingFace cache as a download of `repo` leaves it."""
    entry = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(model_dir, entry / "snapshots" / commit)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(commit)


@pytest.mark.slow
def test_a_model_that_is_not_cached_fails_fast_in_one_line_without_network(tmp_path):
    done, elapsed = _qa_explain(_user_env(tmp_path / "hf", QA_MODEL="someone/not-cached-squad2"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "could not be downloaded" in lines[0] and "not in the HuggingFace cache" in lines[0]
    assert "point QA_MODEL at a local model folder" in lines[0]
    assert elapsed < FAIL_WITHIN_S


@pytest.mark.slow
def test_a_name_the_hub_does_not_know_is_one_line(tmp_path):
    class NoSuchRepo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # what huggingface.co answers for an unknown (or private) repository
            self.send_response(401)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hub = ThreadingHTTPServer(("127.0.0.1", 0), NoSuchRepo)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    try:
        env = _user_env(tmp_path / "hf", QA_MODEL="someone/no-such-model")
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.server_address[1]}"
        done, _ = _qa_explain(env)
    finally:
        hub.shutdown()
        hub.server_close()
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "qa-explain: error: cannot load model 'someone/no-such-model': the HuggingFace hub has no such model (or it "
        "is private or gated); check the name, or point QA_MODEL at a local model folder (config.json, tokenizer "
        "files and tf_model.h5), e.g. QA_MODEL=../shared/models/minilm-l6-squad2-tiny"]


@pytest.mark.slow
def test_a_cached_hub_model_loads_without_the_network_and_tensorflow_stays_quiet(tmp_path, tiny_model_dir):
    _cached_like_the_hub(tiny_model_dir, tmp_path / "hf", "someone/tiny-squad2")
    done, _ = _qa_explain(_user_env(tmp_path / "hf", QA_MODEL="someone/tiny-squad2"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "someone/tiny-squad2"
    assert "Retrying" not in done.stderr and "127.0.0.1" not in done.stderr  # no request was made
    assert not NATIVE.search(done.stderr), done.stderr


@pytest.mark.slow
def test_the_worker_download_step_is_quiet_and_one_line_on_failure(tmp_path, tiny_model_dir):
    env = _user_env(tmp_path / "hf", QA_MODEL=str(tiny_model_dir))
    done = subprocess.run([str(BIN / "qa-worker"), "--download"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert not NATIVE.search(done.stderr), done.stderr
    assert [line for line in done.stderr.splitlines() if "loaded model" not in line] == []
    env["QA_MODEL"] = "someone/not-cached-squad2"
    done = subprocess.run([str(BIN / "qa-worker"), "--download"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("qa-worker: model 'someone/not-cached-squad2' could not be downloaded")


class _Hub(BaseHTTPRequestHandler):
    """The hub's download endpoints for one repository, `someone/tiny`, served from a folder:
    what transformers asks when it downloads a model (metadata, HEAD, then GET of each file)."""

    folder: Path
    requests: list[str]
    commit = "0123456789abcdef0123456789abcdef01234567"

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def _answer(self, with_body: bool) -> None:
        self.requests.append(f"{self.command} {self.path}")
        headers: dict[str, str] = {}
        if self.path.startswith("/api/models/someone/tiny/tree/"):
            status, body = 200, b"[]"
        elif self.path.startswith("/api/models/someone/tiny"):
            status, body = 200, json.dumps({"id": "someone/tiny", "sha": self.commit}).encode()
        elif self.path.startswith("/someone/tiny/resolve/main/") and \
                (self.folder / self.path.rsplit("/", 1)[1]).is_file():
            status, body = 200, (self.folder / self.path.rsplit("/", 1)[1]).read_bytes()
            headers = {"X-Repo-Commit": self.commit, "ETag": f'"{len(body)}-{hash(body)}"'}
        else:
            status, body, headers = 404, b"", {"X-Error-Code": "EntryNotFound"}
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_the_first_start_downloads_the_model_and_the_next_one_asks_the_hub_nothing(tmp_path, tiny_model_dir):
    handler = type("Hub", (_Hub,), {"folder": tiny_model_dir, "requests": []})
    hub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env = _user_env(tmp_path / "hf", QA_MODEL="someone/tiny")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.server_address[1]}"
    try:
        first = subprocess.run([str(BIN / "qa-worker"), "--download"], env=env, capture_output=True, text=True,
                               timeout=180)
        downloads = [r for r in handler.requests if r.startswith("GET /someone/tiny/resolve/")]
        handler.requests.clear()
        second = subprocess.run([str(BIN / "qa-worker"), "--download"], env=env, capture_output=True, text=True,
                                timeout=180)
    finally:
        hub.shutdown()
        hub.server_close()
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "GET /someone/tiny/resolve/main/tf_model.h5" in downloads
    assert handler.requests == []  # from the cache, without a single request


def test_tensorflow_lines_are_dropped_below_the_chosen_level_and_the_rest_is_kept():
    from explain_core.engine.model import _native_lines_kept

    held = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796185396.247754    7951 port.cc:153] oneDNN custom operations are on.\n"
            "2025-09-17 14:44:05.176998: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable\n"
            "/x/y.py:3: DeprecationWarning: something Python said\n"
            "F0000 00:00:1796185396.247754    7951 check.cc:1] fatal\n")
    assert _native_lines_kept(held, 3) == ("/x/y.py:3: DeprecationWarning: something Python said\n"
                                           "F0000 00:00:1796185396.247754    7951 check.cc:1] fatal\n")
    assert "cuda_fft" in _native_lines_kept(held, 2) and "oneDNN" not in _native_lines_kept(held, 2)
    assert _native_lines_kept(held, 0) == held
