# Two commands for a new user: `make run` and `make test`. Everything else is set up by them.
# Targets are incremental: a stamp file per virtualenv, so a second run starts in seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Rasa 3.6 needs Python 3.10 and lives in its own virtualenv. The first python3.10 that runs
# wins (pyenv's shim fails when 3.10 is not its global version); override with PYTHON310=...
PYTHON310 ?= $(shell for p in python3.10 $$(ls -d $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 2>/dev/null); do $$p -c "import sys" >/dev/null 2>&1 && { echo $$p; break; }; done)
RASA_VENV := .venv-rasa
RASA_STAMP := $(RASA_VENV)/.installed
NLU_DATA := build/nlu/nlu.yml
MODEL := models/nlu.tar.gz
CV_DIR := build/nlu/cv
CV_FOLDS ?= 5

.DEFAULT_GOAL := help
.PHONY: help run run-prod test check lint format bench clean train rasa nlu-eval

help:
	@echo "make run    set everything up and start the service on http://127.0.0.1:5000"
	@echo "make test   install what the tests need and run the whole suite (with lint and types)"
	@echo "make run-prod  the production topology on this machine: PostgreSQL, Redis, 2 workers"
	@echo "make check  ruff, mypy and the layer contracts only"
	@echo "make bench  run the webhook load benchmark (bench/README.md)"
	@echo "make train  (re)train the Rasa NLU model when its data or config changed"
	@echo "make nlu-eval  score the model on the held-out sets (nlu/eval.yml, nlu/heldout.yml), and cross-validate"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(RASA_STAMP): nlu/requirements-rasa.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is needed for Rasa: set PYTHON310=/path/to/python3.10"; exit 1; }
	$(PYTHON310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install --quiet --upgrade pip wheel
	$(RASA_VENV)/bin/pip install --quiet -r nlu/requirements-rasa.txt
	@touch $@

rasa: $(RASA_STAMP)

$(NLU_DATA): $(STAMP) $(wildcard data/faq/*.yml data/intents/*.yml) nlu/catalogue.py nlu/training.py
	$(BIN)/bot nlu build --out $(dir $@)

# Retrains only when the pipeline or the training data changed.
$(MODEL): $(RASA_STAMP) config.yml $(NLU_DATA)
	$(RASA_VENV)/bin/rasa train nlu --config config.yml --nlu $(NLU_DATA) --out models --fixed-model-name nlu

train: $(MODEL)

# The held-out sets (nlu/eval.yml, nlu/heldout.yml) through the bot, with Rasa and with Rasa
# down (the keyword matcher alone), then Rasa's cross-validation over the training data
# (about a minute; Rasa's own log goes to $(CV_DIR)/rasa.log). The folds are shuffled without
# a seed, so the CV figures move by a point or so between runs. No training cache: every
# fold's model is new, and it would only grow .rasa/cache.
nlu-eval: $(MODEL)
	$(BIN)/bot nlu eval
	$(BIN)/bot nlu eval --fallback
	@rm -rf $(CV_DIR) && mkdir -p $(CV_DIR)
	@echo "rasa test nlu --cross-validation --folds $(CV_FOLDS) --out $(CV_DIR) …"
	@RASA_MAX_CACHE_SIZE=0 $(RASA_VENV)/bin/rasa test nlu --config config.yml --nlu $(NLU_DATA) \
		--cross-validation --folds $(CV_FOLDS) --out $(CV_DIR) >$(CV_DIR)/rasa.log 2>&1 \
		|| { tail -n 30 $(CV_DIR)/rasa.log; exit 1; }
	@$(BIN)/python -m nlu.evaluate --cv $(CV_DIR)

# Rasa is installed and trained here unless RASA_URL points at a running server.
run: $(STAMP) $(if $(RASA_URL),,$(MODEL))
	$(BIN)/bot run

# The production topology on one machine, for trying it: PostgreSQL and Redis (the local
# servers unless PROD_DATABASE_URL / PROD_REDIS_URL say otherwise), gunicorn with 4
# processes, 2 workers, 2 schedulers (one active) and Rasa (unless RASA_URL is set).
PROD_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/community_bot
PROD_REDIS_URL ?= redis://127.0.0.1:6379/0
run-prod: $(STAMP) $(if $(RASA_URL),,$(MODEL))
	DATABASE_URL=$(PROD_DATABASE_URL) REDIS_URL=$(PROD_REDIS_URL) LOG_FORMAT=json \
		$(BIN)/bot run --create-database --web-workers 4 --workers 2 --schedulers 2

# The layers of the README's picture are import-linter contracts (.importlinter).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The browser tests (tests/dashboard/test_browser.py) drive Debian's Chromium: installed once,
# with sudo unless we are root; the package lists are refreshed only if the install needs it.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver

$(CHROMIUM):
	@echo "installing Chromium for the browser tests (apt-get) …"
	@$(APT_CHROMIUM) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq >/dev/null && $(APT_CHROMIUM) >/dev/null; }

# The model `make run` serves is tested too (its accuracy on the held-out sets, its answers
# against Rasa's own agent): the first `make test` installs Rasa and trains it (a few minutes).
test: $(STAMP) $(CHROMIUM) $(MODEL) check
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.webhook_load

clean:
	rm -rf $(VENV) $(RASA_VENV) build models .pytest_cache .mypy_cache .ruff_cache
