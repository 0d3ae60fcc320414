# The two entry points of the README: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := daemon tests benchmarks components/_lib

.PHONY: install run test lint typecheck unit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

# Until the daemon exists: check the bundled example repo, apply dev once, show its status.
run: install
	$(BIN)/gitopsd validate
	$(BIN)/gitopsd apply --env dev
	$(BIN)/gitopsd status --env dev

lint: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .gitopsd .mypy_cache .pytest_cache .ruff_cache
