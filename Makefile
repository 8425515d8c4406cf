# Faultline — every target installs what it needs from the lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install serve test lint fmt bench lock clean experiment experiments scenarios loadtest report slo-check baseline incident

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

bench: $(STAMP) ## the gateway vs the thinnest forwarder in one run: ratios, floors (quota on real Redis)
	$(PY) -m experiments.bench
	$(PY) -m pytest -q -m bench --benchmark-only tests/gateway/quota/test_bench.py

SCENARIO ?= baseline

experiment: $(STAMP) ## run one scenario: SCENARIO=<name> [MODE=real|replay] [SEED=n] [SCALE=f]
	$(PY) -m experiments run $(SCENARIO) --mode $(or $(MODE),real) $(if $(SEED),--seed $(SEED)) $(if $(SCALE),--scale $(SCALE))

experiments: $(STAMP) ## run every scenario (MODE=replay by default, MODE=real for real time)
	$(PY) -m experiments all --mode $(or $(MODE),replay) $(if $(SCALE),--scale $(SCALE))

scenarios: $(STAMP) ## list the scenarios with one-line descriptions
	$(PY) -m experiments list

loadtest: $(STAMP) ## locust against a gateway: [URL=http://127.0.0.1:8000] [KEY=...] [HEADLESS=1 USERS=n RATE=n TIME=60s]
	$(PY) -m experiments.loadtest $(if $(URL),--url $(URL)) $(if $(KEY),--key $(KEY)) $(if $(HEADLESS),--headless) $(if $(USERS),--users $(USERS)) $(if $(RATE),--spawn-rate $(RATE)) $(if $(TIME),--run-time $(TIME))

report: $(STAMP) ## regenerate a run's report: RUN=<run dir>
	$(PY) -m reports $(RUN)

slo-check: $(STAMP) ## replay every scenario and check it against its CI budgets and baseline
	$(PY) -m experiments.slocheck

baseline: $(STAMP) ## replay every scenario and rewrite experiments/baselines/ on purpose
	$(PY) -m experiments.slocheck --write

incident: $(STAMP) ## regenerate docs/INCIDENT.md and its charts from an openai-outage replay
	$(PY) -m experiments.incident

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache runs
