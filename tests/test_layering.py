"""The rule the tree shows: which process may import what.

- `explain_core.engine` and `explain_core.evaluation` hold TensorFlow; `explain_core.render` holds PIL.
- `explain_core.queue`, `explain_core.present` and the shared top-level modules (errors, defaults, ops,
  settings, validation, explanation, codec, wording) hold neither: the bot may import them, and only them.
- Nothing in explain_core imports Slack; nothing in the bot imports TensorFlow.
  (PIL is checked statically only: pypdf, which the bot uses, loads PIL whenever it is installed.)

Two checks: a static one over every module's import statements (which names the rule by
package, so a violation says which import broke it), and a dynamic one in a fresh
interpreter (imports are process-wide, and an indirect import counts too).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

SHARED = ("errors", "defaults", "settings", "validation", "explanation", "codec", "ops", "wording")
BOT_MAY_IMPORT = ("queue", "present", *SHARED)
# What each part of explain_core may import from explain_core (the part itself is always allowed).
ALLOWED: dict[str, tuple[str, ...]] = {
    **{name: SHARED for name in SHARED},
    "present": SHARED,
    "queue": ("present", *SHARED),
    "engine": SHARED,
    "render": ("present", *SHARED),
    "worker": ("engine", "render", "present", "queue", *SHARED),
    "cli": ("engine", "render", "present", *SHARED),
    "evaluation": ("engine", *SHARED),
}
MODEL_STACK = ("tensorflow", "tf_keras", "keras", "transformers", "torch")
SLACK = ("slack_bolt", "slack_sdk")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every absolute module name a file imports (at any depth of the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _part(module: str) -> str | None:
    """`explain_core.queue.keys` -> "queue"; `explain_core` itself (its lazy API) -> None."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "explain_core" else None


def _parts_imported(path: Path) -> set[str]:
    """The parts of explain_core a file imports; names that are no part (`from explain_core import
    InputError`, the top-level re-exports) count only for the bot's stricter rule."""
    return {part for name in _imports(path) if (part := _part(name)) is not None}


def _is_part(name: str) -> bool:
    return (ROOT / "explain_core" / name).is_dir() or (ROOT / "explain_core" / f"{name}.py").exists()


@pytest.mark.parametrize("path", _modules("explain_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_part_of_explain_core_imports_only_what_its_runtime_allows(path: Path) -> None:
    relative = path.relative_to(ROOT / "explain_core")
    own = relative.parts[0].removesuffix(".py")
    if own == "__init__":
        return  # the package's lazy public API
    allowed = {own, *ALLOWED[own]}
    parts = {part for part in _parts_imported(path) if _is_part(part)}
    assert parts <= allowed, f"{relative} imports {sorted(parts - allowed)}"
    third_party = {name.split(".")[0] for name in _imports(path)}
    assert not third_party & set(SLACK)
    if own in BOT_MAY_IMPORT:  # what the bot loads holds no model and no drawing
        assert not third_party & {*MODEL_STACK, "PIL"}, sorted(third_party & {*MODEL_STACK, "PIL"})


@pytest.mark.parametrize("path", _modules("bot"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_bot_imports_only_queue_present_and_shared_modules(path: Path) -> None:
    imported = _imports(path)
    assert _parts_imported(path) <= set(BOT_MAY_IMPORT), sorted(_parts_imported(path) - set(BOT_MAY_IMPORT))
    assert not {name.split(".")[0] for name in imported} & set(MODEL_STACK)


def loaded_after_importing(packages: list[str]) -> set[str]:
    """Top-level names in sys.modules after importing every module of `packages`, in a fresh interpreter."""
    code = f"""
import importlib, json, pkgutil, sys
names = []
for package in {packages!r}:
    module = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(getattr(module, "__path__", []), package + ".")
              if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_bot_process_never_loads_the_model_stack() -> None:
    loaded = loaded_after_importing(["bot", *(f"explain_core.{name}" for name in BOT_MAY_IMPORT)])
    assert "redis" in loaded and "slack_bolt" in loaded  # the imports did happen
    assert loaded.isdisjoint(MODEL_STACK), sorted(loaded & set(MODEL_STACK))


def test_explain_core_never_loads_slack() -> None:
    loaded = loaded_after_importing(["explain_core"])
    assert "tensorflow" in loaded  # the whole package, engine included, was imported
    assert loaded.isdisjoint(SLACK), sorted(loaded & set(SLACK))
