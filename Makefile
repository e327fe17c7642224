# Two commands do all the set-up on a fresh machine (Python 3.11+ and redis-server needed):
#   make demo   answers and explains a question about samples/lighthouse.txt, writes out/explanation.png
#   make test   runs the whole test suite
# and one runs the Slack bot (README.md, "Set up the Slack app"):
#   make run    the bot and the worker (Procfile), with a local Redis if none answers (scripts/run.py)
# (make lint runs ruff and mypy, as CI does before the tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUESTION ?= Who built the Bell Rock Lighthouse?
PASSAGE ?= samples/lighthouse.txt

.PHONY: demo test lint install run

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/qa-explain --question "$(QUESTION)" --passage-file $(PASSAGE) --png out/explanation.png

run: install
	$(BIN)/python scripts/run.py

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy scripts/run.py
