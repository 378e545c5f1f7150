# Two commands for a new user: `make run` (the whole pipeline, embedded) and `make test`.
# Both create or refresh .venv from pyproject.toml first; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

WEB := serving/web
WEB_STAMP := $(WEB)/dist/.built
# Debian packages by the command they provide: the browser tests need chromium, `make bench` wrk + nginx
TEST_PACKAGES := chromium:chromium node:nodejs npm:npm
BENCH_PACKAGES := wrk:wrk nginx:nginx-light

.PHONY: setup run test test-reliability lint bench screenshots web clean check-prereqs system-deps

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

check-prereqs:
	@command -v java >/dev/null || { echo "Java 17+ is required for the Spark batch layer (apt-get install openjdk-17-jre-headless)"; exit 1; }

# Installs what is missing with apt-get when running as root (CI, these machines); otherwise says what to run.
system-deps:
	@bash infra/apt-deps.sh $(TEST_PACKAGES)

# The dashboard/widget bundle (uPlot + our JS/CSS, bundled by esbuild); rebuilt when its sources change.
$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build.mjs $(shell find $(WEB)/src -type f 2>/dev/null)
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

web: system-deps $(WEB_STAMP)

setup: $(STAMP) check-prereqs web

run: setup
	$(BIN)/lambdalytics up

test: setup
	$(BIN)/python -m pytest

# Load, kill -9 faults and bad input against running processes (also part of `make test`);
# regenerates docs/reliability.md from the run.
test-reliability: setup
	LAMBDALYTICS_RELIABILITY_REPORT=docs/reliability.md $(BIN)/python -m pytest tests/reliability -m reliability

screenshots: setup
	$(BIN)/python -m lambdalytics.cli.screenshots --out docs/img

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests/test_layers.py
	$(BIN)/lambdalytics schemas export --check

BENCH_EVENTS ?= --events 100000 --events 1000000 --events 10000000
SPEED_EVENTS ?= --events 50000 --events 500000 --events 5000000
SPEED_ACTIVE ?= --active 100000 --active 1000000 --catch-up 5000000
BENCH_CUSTOMERS ?= --customers 100000 --customers 1000000
STORE_SIZES ?= --orders 10000 --orders 100000 --orders 1000000 --customers 100000 --customers 1000000 --customers 10000000
bench: setup
	@bash infra/apt-deps.sh $(BENCH_PACKAGES)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/speed.py $(SPEED_EVENTS)
	$(BIN)/python bench/speed.py $(SPEED_ACTIVE)
	$(BIN)/python bench/batch.py $(BENCH_EVENTS)
	$(BIN)/python bench/compaction.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/freshness.py --background-rate 5000
	$(BIN)/python bench/serving.py $(BENCH_CUSTOMERS)
	$(BIN)/python bench/serving_store.py $(STORE_SIZES)
	$(BIN)/python bench/metric_file.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache $(WEB)/dist $(WEB)/node_modules
