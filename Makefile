# Two commands do all the set-up on a fresh machine (Python 3.11+ and redis-server needed):
#   make demo   answers and explains a question about samples/lighthouse.txt, writes out/explanation.png
#   make test   runs the whole test suite (in parallel: TEST_PROCS test processes)
# and one runs the Slack bot (README.md, "Set up the Slack app"):
#   make run    the bot and the worker (Procfile), with a local Redis if none answers (scripts/run.py)
# Also: make test-quick (the inner loop: no slow tests), make lint (ruff, mypy and the lock check, as CI
# runs them), make lock (refresh requirements/dev.txt from pyproject.toml), make audit (known
# vulnerabilities in the locked versions; needs the network).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUESTION ?= Who built the Bell Rock Lighthouse?
PASSAGE ?= samples/lighthouse.txt
LOCK := requirements/dev.txt
# Test processes: the suite waits on subprocesses, Redis and sockets as much as it computes, so one more
# process than cores keeps the cores busy (docs/benchmarks.md, "The test suite"); at most 8,
# as each one holds TensorFlow (about 1 GB).
TEST_PROCS ?= $(shell $(PYTHON) -c 'import os; print(min(8, len(os.sched_getaffinity(0)) + 1) if hasattr(os, "sched_getaffinity") else min(8, (os.cpu_count() or 1) + 1))')
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_PROCS) --dist loadgroup $(PYTEST_ARGS)
# pip-compile from PyPI alone, whatever pip configuration this machine has, so the lock is the same everywhere.
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	$(BIN)/pip-compile --quiet --strip-extras --generate-hashes --allow-unsafe --extra worker --extra bot --extra dev --no-header \
	--annotation-style line pyproject.toml

.PHONY: demo test test-quick lint lock lock-check audit install run

install: $(VENV)/.installed

# Exactly the locked versions, checked against their hashes; then the project itself, without dependencies.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: install
	$(BIN)/qa-explain --question "$(QUESTION)" --passage-file $(PASSAGE) --png out/explanation.png

run: install
	$(BIN)/python scripts/run.py

test: install
	$(PYTEST)

test-quick: install
	$(PYTEST) -m "not slow"

lint: install lock-check
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy scripts/run.py

lock: install
	$(PIP_COMPILE) --output-file $(LOCK)

# The lock still answers pyproject.toml: pip-compile keeps every pin that satisfies it, so its output
# differs from the lock only when a requirement changed without `make lock`.
lock-check: install
	@tmp=$$(mktemp) && cp $(LOCK) $$tmp && $(PIP_COMPILE) --output-file $$tmp && \
	if diff -u $(LOCK) $$tmp; then echo "$(LOCK) matches pyproject.toml"; rm -f $$tmp; \
	else rm -f $$tmp; echo "$(LOCK) does not match pyproject.toml: run make lock"; exit 1; fi

audit: install
	$(BIN)/pip-audit --disable-pip --require-hashes -r $(LOCK)
