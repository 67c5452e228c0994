# gonogo: `make test` and `make demo` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-long unit integration demo bench lint schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[airflow,team,dev]'
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
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

schema: $(STAMP)
	$(BIN)/gonogo schema > schema/runbook.schema.json

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis
