# Two commands on a fresh machine: `make run` (the demo's main job) and `make test`.
# Both build .venv from requirements.lock when it is missing or stale.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv browser run serve lint test test-fast bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	@VENV=$(VENV) scripts/run_demo.sh

# The warning site over the warehouse `make run` built: http://127.0.0.1:8765/ (the accounts it printed).
serve: venv
	$(BIN)/hotline serve

# Headless Chromium + a CJK font for the browser tests (Debian packages, as root).
# Quick no-op when both are there; `apt-get update` only if the install needs it.
BROWSER_PKGS := chromium fonts-noto-cjk
browser:
	@if [ -x /usr/bin/chromium ] && [ -n "$$(fc-list :lang=zh 2>/dev/null)" ]; then :; else \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $(BROWSER_PKGS) || \
	  { apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PKGS); }; \
	fi

# The layer contract (pyproject.toml [tool.importlinter]) and ruff (pyflakes, import order, line
# length): an upward import or a lint error fails `make test` before the suite runs.
lint: venv
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .

# The suite runs on every core (pytest-xdist), a test module to a worker: each worker has its own
# PostgreSQL database, Airflow home and ports, so the modules do not see each other.
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test: venv browser lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=25

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

# wrk (Debian's) drives the served site's page-time benchmark (bench/web.py).
bench: venv
	@command -v wrk > /dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends wrk || { apt-get update && apt-get install -y --no-install-recommends wrk; }; }
	$(BIN)/python -m bench.run

# Re-resolve the pins from pyproject.toml (needs the package index).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet ".[test]"
	{ .lockvenv/bin/pip freeze --exclude hotline-early-warning; echo "setuptools==80.9.0"; } | \
	  { echo "# Pinned, resolved set for Python 3.11 (pip freeze of a fresh resolve of pyproject.toml [test])."; \
	    echo "# Regenerate: make lock"; cat; } > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) var .pytest_cache
