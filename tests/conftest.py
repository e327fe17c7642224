"""Fixtures shared by the whole suite: offline tiny models and Redis servers."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer

# Nothing in the tests may reach the HuggingFace hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel runs (`make test`) have a test process per core already: a TensorFlow thread pool per core
    # in each of them (and in the workers they start, which inherit this) only makes the pools spin
    # against each other. Results do not depend on it: the tiny models' ops are too small to split.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture()
def redis_url() -> Iterator[str]:
    """A fresh database on a private redis-server (cheap: one process for each test that asks)."""
    server = RedisServer(appendonly=False).start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture()
def durable_redis() -> Iterator[RedisServer]:
    """A private, append-only redis-server that a test may kill or restart."""
    server = RedisServer(appendonly=True).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture()
def namespace() -> str:
    """A key prefix no other test uses, so tests sharing a server never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:8]}"


def _built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Path]) -> Path:
    """The folder `build` fills, built once for the whole run: under xdist every test process
    asks for it, so the first builds it under a file lock in the folder they share (the parent of
    their own temporary folders) and the others reuse it, once it is complete."""
    from filelock import FileLock

    own = tmp_path_factory.getbasetemp()
    shared = own.parent if os.environ.get("PYTEST_XDIST_WORKER") else own
    folder, done = shared / name, shared / f"{name}.done"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT QA checkpoint folder (uncased WordPiece), built once per run."""
    # Imported here so that test modules which never ask for a model (the bot's) never load TensorFlow.
    from tests.support.tiny_models import build_tiny_model

    return _built_once(tmp_path_factory, "tiny-bert", lambda folder: build_tiny_model("bert", folder))


@pytest.fixture(scope="session")
def tiny_model_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny QA checkpoint folder per tokenizer family: "bert", "distilbert", "roberta"."""
    from tests.support.tiny_models import build_tiny_model

    dirs = {"bert": tiny_model_dir}
    for kind in ("distilbert", "roberta"):
        dirs[kind] = _built_once(tmp_path_factory, f"tiny-{kind}", lambda folder, k=kind: build_tiny_model(k, folder))
    return dirs


@pytest.fixture(scope="session")
def twin_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model name for the tiny checkpoint (a symlink), so a worker offers two models to
    compare (`QA_MODELS`) without a second checkpoint to build or load."""
    twin = tmp_path_factory.mktemp("models") / "tiny-twin"
    twin.symlink_to(tiny_model_dir, target_is_directory=True)
    return twin

