# Bourse: the two commands are `make run` and `make test`; everything else serves them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .tools/sam
STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed
UV_VERSION := 0.13.8
PYTEST_ARGS ?=

.PHONY: run test up down status seed lint typecheck validate bench-engine clean system-packages venv tools

## The venv: pinned app + dev dependencies, and a .pth that puts the bourse layer, the matching
## service and the local stack on sys.path (they are deployed from these folders as they are).
$(STAMP): requirements/dev.txt layers/bourse/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Bourse needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements/dev.txt
	printf '%s\n' "$(CURDIR)/layers/bourse" "$(CURDIR)/matching-service" "$(CURDIR)" \
	  > $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/bourse-dev.pth
	touch $@

## Tools whose pins clash with the app's (aws-sam-cli pins its own boto3) get their own venv.
$(SAM_STAMP): requirements/sam.txt | $(STAMP)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(SAM_VENV)/bin/uv pip install -q --python $(SAM_VENV)/bin/python -r requirements/sam.txt
	touch $@

venv: $(STAMP)
tools: $(SAM_STAMP)

system-packages:
	@bash devstack/system-packages.sh

up: $(STAMP) system-packages
	$(PY) -m devstack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing to stop (no venv)"; fi

status: $(STAMP)
	$(PY) -m devstack status

seed: up
	$(PY) -m devstack seed

## Brings the whole exchange up in the foreground; Ctrl-C stops all of it.
run: $(STAMP) $(SAM_STAMP) system-packages
	$(PY) -m devstack run

## The whole suite against the real stack (started here if it is not up).
test: $(STAMP) $(SAM_STAMP) system-packages
	$(PY) -m devstack up
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Offline: sam validate needs a region and some credentials to exist, never to be valid.
validate: $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	  SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml

bench-engine: $(STAMP)
	$(PY) bench/engine_bench.py

## 200,000 commands through Kafka and the matching service, beside the engine alone.
.PHONY: bench-service
bench-service: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/service_bench.py

## POST /api/v3/order (RESULT) through the local gateway with the whole pipeline live.
.PHONY: bench-api
bench-api: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/api_bench.py

## The engine's balances (newest snapshot + replay) against the record's projection in
## PostgreSQL; ends with one line `reconcile: N differences`.
.PHONY: reconcile bench-recorder
reconcile: $(STAMP)
	$(PY) -m matching_service.reconcile

## Events/s the trade recorder writes into PostgreSQL (one transaction per batch).
bench-recorder: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/recorder_bench.py

clean: down
	rm -rf $(VENV) .tools .devstack .pytest_cache .hypothesis .mypy_cache .ruff_cache
