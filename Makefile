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

unit: install
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .gitopsd .mypy_cache .pytest_cache .ruff_cache
