# Two commands for a new user: `make run` and `make test`. Everything else is set up by them.
# Targets are incremental: a stamp file per virtualenv, so a second run starts in seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test check lint format bench clean

help:
	@echo "make run    set everything up and start the service on http://127.0.0.1:5000"
	@echo "make test   install what the tests need and run the whole suite (with lint and types)"
	@echo "make check  ruff and mypy only"
	@echo "make bench  run the webhook load benchmark (bench/README.md)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/bot run

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

lint: check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.webhook_load

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
