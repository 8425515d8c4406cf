# Faultline — every target installs what it needs from the lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install serve test lint fmt bench lock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	@touch $(STAMP)

install: $(STAMP) ## create .venv from the lock file

lock: ## re-resolve requirements.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock -q

serve: $(STAMP) ## gateway on :8000 with two simulated upstreams and an embedded state store
	$(PY) -m gateway.devserver

test: $(STAMP) ## the whole test suite
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff and mypy (strict on gateway/)
	$(BIN)/ruff check gateway simulators experiments reports tests
	$(BIN)/ruff format --check gateway simulators experiments reports tests
	$(BIN)/mypy

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format gateway simulators experiments reports tests
	$(BIN)/ruff check --fix gateway simulators experiments reports tests

bench: $(STAMP) ## throughput and added latency: simulator alone vs gateway in front of it
	$(PY) -m experiments.bench

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache runs
