# gonogo: `make test` and `make demo` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The versions every install gets (Airflow's convention): `make constraints` refreshes it.
CONSTRAINTS := constraints-3.11.txt
PIP_INSTALL := $(BIN)/pip install --quiet -c $(CONSTRAINTS)

.PHONY: test test-long test-latest unit integration demo bench lint schema constraints clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[airflow,team,dev]'
	touch $(STAMP)

## Every everyday test: unit, DAG and a real Airflow (SQLite unless GONOGO_TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not long" tests

## The long suites: Airflows of their own (FAB, Celery), planned time, notifications, pages.
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check plugins dags tests
	$(BIN)/ruff format --check plugins dags tests
	$(BIN)/mypy

## Airflow on SQLite at http://localhost:8080 with the example runbooks. Ctrl-C stops it all.
demo: $(STAMP)
	$(BIN)/python -m gonogo.dev.demo

## All benchmarks at full size; BENCH_ARGS=--quick for a fast pass.
bench: $(STAMP)
	$(PIP_INSTALL) -e '.[bench]'
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

## Resolve the newest versions pyproject.toml allows into $(CONSTRAINTS) (commit it after `make test`).
constraints:
	PYTHON=$(PYTHON) .ci/constraints.sh

## The unit tests against the newest allowed versions, unpinned, in .venv-latest: drift shows here first.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade -e '.[airflow,dev]'
	.venv-latest/bin/python -m pytest -q tests/unit

schema: $(STAMP)
	$(BIN)/gonogo schema > schema/runbook.schema.json

clean:
	rm -rf $(VENV) .venv-latest .demo .pytest_cache .hypothesis
