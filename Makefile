# fullstory-user-sync: the README's commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help venv demo demo-debezium bench test test-unit test-unit-pure sanitize test-debezium test-faults test-integration lint lock image-check chart-check alerts-check broker-start broker-stop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Exactly the locked versions, by hash (requirements/test.lock: the worker's dependencies, the
# test tools, the sandbox's and the build backend); then the worker and the sandbox, editable,
# with nothing resolved (--no-deps) and the locked setuptools (--no-build-isolation).
$(VENV)/.installed: pyproject.toml sandbox/pyproject.toml requirements/test.lock worker/events/_user_change.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements/test.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . -e ./sandbox
	touch $@

venv: $(VENV)/.installed ## create .venv with the worker, the sandbox and the test tools, from requirements/test.lock

demo: venv ## start the local broker and sandbox, stream sample users, run the worker until drained
	$(PY) scripts/demo.py

demo-debezium: venv ## demo's Debezium variant: PostgreSQL + Connect + broker + sandbox; a 2,000-row table snapshotted, updated, deleted, followed (under a minute warm)
	$(PY) scripts/demo_debezium.py

# BENCH_ARGS: e.g. '--scale 0.05' (smoke run) or '--scenario backlog' (see scripts/bench.py).
BENCH_ARGS ?=
bench: venv ## backlog, API outage, replay and live-stream latency on the real broker; writes bench/RESULTS.md
	$(PY) scripts/bench.py $(BENCH_ARGS)

broker-start: ## start this checkout's Kafka broker (127.0.0.1:9092, or the next free port); prints it
	bash scripts/kafka.sh start

broker-stop: ## stop the local Kafka broker
	bash scripts/kafka.sh stop

lint: venv ## ruff and mypy --strict on the package
	$(VENV)/bin/ruff check worker fullstory_sandbox tests
	$(VENV)/bin/mypy worker

# The fast tier runs both ways, as aiokafka's CI does with AIOKAFKA_NO_EXTENSIONS: with the
# compiled Avro reader (test-unit, and `make test`'s whole suite) and with fastavro alone.
FAST := tests/unit tests/component tests/sandbox tests/hostile
test-unit: venv ## the fast tier, no broker: pure unit tests, the loop's component tests on fakes, the sandbox, hostile peers on loopback
	env -u FSUS_NO_EXTENSIONS $(PY) -m pytest -q $(FAST)

test-unit-pure: venv ## the fast tier with FSUS_NO_EXTENSIONS=1: the worker reads with fastavro, as a build without a C compiler does
	FSUS_NO_EXTENSIONS=1 $(PY) -m pytest -q -p no:cacheprovider $(FAST)

sanitize: venv ## the compiled Avro reader built with ASan and UBSan outside the tree, under its differential and decode tests
	$(PY) scripts/sanitize.py

# tests/integration/debezium alone (its fixtures start PostgreSQL and Connect, stop them after).
test-debezium: venv broker-start ## the Debezium stack: real PostgreSQL + Debezium connector in Kafka Connect, Avro in Confluent wire format
	$(PY) -m pytest -q -p no:cacheprovider tests/integration/debezium

# The real-broker tiers run as `make test` runs its suite: with the compiled Avro reader, and
# without pytest's cache (the fixtures find the broker broker-start printed: tests/integration/conftest.py).
SUITE := env -u FSUS_NO_EXTENSIONS $(PY) -m pytest -q -p no:cacheprovider
test-integration: venv broker-start ## the integration tier alone on the real broker: end to end, operations, hand-over, the fault suite and the Debezium stack
	$(SUITE) tests/integration

test-faults: venv broker-start ## the fault suite alone: crashes, rebalances, broker restarts, API storms
	$(PY) -m pytest -q -p no:cacheprovider tests/integration/faults

chart-check: venv ## the Helm chart: build helm once (.tools/), lint, render, validate against Kubernetes schemas, tests/chart
	bash scripts/check_chart.sh

# Each lock's second line is the command that made it; uv keeps the pins already in a lock, so
# to move to newer versions delete the lock (or the line of a package) and run this again.
LOCK := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
lock: venv ## regenerate requirements/*.lock (hashed, Python 3.11, linux x86_64 and aarch64) from the pyproject files
	$(LOCK) pyproject.toml -o requirements/runtime.lock
	$(LOCK) requirements/build.in -o requirements/build.lock
	$(LOCK) pyproject.toml sandbox/pyproject.toml requirements/build.in --extra test -o requirements/test.lock

image-check: venv ## the image without a container engine: hadolint, locks in step, offline runtime install from the locks
	PY=$(PY) PYTHON=$(PYTHON) bash scripts/check_image.sh

alerts-check: venv ## the chart's alerts under `promtool test rules` (tests/chart/alerts): builds promtool once into .tools/
	bash scripts/check_alerts.sh

# chart-check builds helm before `pytest tests` runs tests/chart, which need it.
test: venv broker-start lint image-check chart-check alerts-check test-unit-pure sanitize ## everything: lint, the image check, the chart and its alerts, the fast tier without the compiled reader, the sanitizers, then unit, sandbox, integration and fault tests on the real broker
	$(SUITE) tests

clean: ## stop the broker, PostgreSQL and Connect and remove local state
	-bash scripts/connect.sh stop
	-bash scripts/postgres.sh stop
	-bash scripts/kafka.sh stop
	rm -rf $(VENV) .kafka .postgres .connect .demo sandbox/*.egg-info

# Mutation testing: MUTATION_JOBS mutants at once (each runs the fast tier); MUTANTS='worker.loop.batch.*'
# re-tests only those on the last run's cache instead of starting again from scratch.
MUTATION_JOBS ?= 2
MUTANTS ?=
.PHONY: mutation
$(VENV)/.mutation-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test,mutation]'
	touch $@

mutation: $(VENV)/.mutation-installed ## mutation testing of the core on the fast tier; survivors in .mutation/survivors.txt
	FSUS_COMPONENT_WAIT_S=3 $(PY) scripts/mutation_report.py run --jobs $(MUTATION_JOBS) $(MUTANTS)
