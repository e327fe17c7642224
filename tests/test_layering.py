"""Layering: the bot side never loads TensorFlow (directly or through anything it imports),
and explain_core never loads Slack.

Checked in a fresh interpreter, because imports are process-wide: this test process may
already hold TensorFlow for other tests. Every module of a package is imported, so a
forbidden import anywhere in it, however indirect, is caught.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The modules the bot process uses; the bot package is walked whole.
BOT_SIDE = ["explain_core.queue", "explain_core.jobs", "explain_core.summary"]
MODEL_STACK = ("tensorflow", "tf_keras", "keras", "transformers", "torch")
SLACK = ("slack_bolt", "slack_sdk")


def loaded_after_importing(modules: list[str], packages: list[str]) -> set[str]:
    """Top-level names in sys.modules after importing `modules` and every module of `packages`."""
    code = f"""
import importlib, json, pkgutil, sys
names = {modules!r}
for package in {packages!r}:
    names += [m.name for m in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_bot_side_never_imports_the_model_stack() -> None:
    loaded = loaded_after_importing(BOT_SIDE, ["bot"])
    assert "redis" in loaded and "slack_bolt" in loaded  # the imports did happen
    assert loaded.isdisjoint(MODEL_STACK), sorted(loaded & set(MODEL_STACK))


def test_explain_core_never_imports_slack() -> None:
    loaded = loaded_after_importing([], ["explain_core"])
    assert "tensorflow" in loaded  # the whole package, engine included, was imported
    assert loaded.isdisjoint(SLACK), sorted(loaded & set(SLACK))
