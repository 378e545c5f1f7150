# Two commands for a new user: `make run` (the whole pipeline, embedded) and `make test`.
# Both create or refresh .venv from pyproject.toml first; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench clean check-prereqs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

check-prereqs:
	@command -v java >/dev/null || { echo "Java 17+ is required for the Spark batch layer (apt-get install openjdk-17-jre-headless)"; exit 1; }

setup: $(STAMP) check-prereqs

run: setup
	$(BIN)/lambdalytics up

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lambdalytics schemas export --check

BENCH_EVENTS ?= --events 1000000 --events 10000000
bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/batch.py $(BENCH_EVENTS)

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
