# The two commands a new user runs: `make demo` and `make test`.
# Each creates .venv from scratch when it is missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV84 := .venv-pytest84
PIP_FLAGS := --disable-pip-version-check -q
PYTEST_ARGS ?=

.PHONY: demo test lint types pytest pytest84 pytest-uvloop pytest-example postgres clean compat bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -U pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[postgres]' --group test --group lint
	touch $@

$(VENV84)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV84)
	$(VENV84)/bin/python -m pip install $(PIP_FLAGS) -U pip
	$(VENV84)/bin/python -m pip install $(PIP_FLAGS) -e '.[postgres]' --group test 'pytest==8.4.*'
	touch $@

# The example app's suite on embedded SQLite; its integration tests are
# skipped, and the summary says how to run them.
demo: $(VENV)/.installed
	$(BIN)/pytest examples/bookshelf -p no:cacheprovider -v -rs

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(VENV)/.installed
	$(BIN)/mypy

# PostgreSQL is installed (Debian's package) and started when missing.
postgres:
	bash scripts/ensure-postgres.sh >/dev/null

pytest: $(VENV)/.installed postgres
	ONELOOP_TEST_PG_URL="$$(bash scripts/ensure-postgres.sh)" \
	  $(BIN)/pytest -n 2 $(PYTEST_ARGS)
	ONELOOP_TEST_PG_URL="$$(bash scripts/ensure-postgres.sh)" \
	  $(BIN)/pytest -n 2 --integration $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no integration test selected

pytest84: $(VENV84)/.installed postgres
	ONELOOP_TEST_PG_URL="$$(bash scripts/ensure-postgres.sh)" \
	  $(VENV84)/bin/pytest -n 2 $(PYTEST_ARGS)
	ONELOOP_TEST_PG_URL="$$(bash scripts/ensure-postgres.sh)" \
	  $(VENV84)/bin/pytest -n 2 --integration $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no integration test selected

# The core suite once more with the session loop made by uvloop.
pytest-uvloop: $(VENV)/.installed
	ONELOOP_TEST_LOOP_FACTORY=uvloop:new_event_loop \
	  $(BIN)/pytest -n 2 tests/test_hooks.py tests/test_tasks.py $(PYTEST_ARGS)

# The example app's suite on SQLite, then its integration tests on PostgreSQL.
pytest-example: $(VENV)/.installed postgres
	$(BIN)/pytest examples/bookshelf -p no:cacheprovider
	$(BIN)/pytest examples/bookshelf -p no:cacheprovider --integration \
	  --db-url "$$(bash scripts/ensure-postgres.sh)" || [ $$? -eq 5 ]  # 5: no integration test selected

test: lint types pytest pytest84 pytest-uvloop pytest-example

# Real projects' suites under pytest-asyncio, then under this tree (needs PyPI;
# about 15 minutes; not part of `test`): writes bench/compat/results.md.
compat:
	$(PYTHON) bench/compat/run_all.py $(COMPAT_ARGS)

# Overhead against pytest-asyncio and anyio, side by side (needs PyPI; 15 to
# 35 minutes on 2 cores, most of it bench/db_isolation.py; not part of `test`):
# writes bench/results.md and bench/results.png. BENCH_ARGS=--quick: smoke run.
bench:
	$(PYTHON) bench/overhead.py $(BENCH_ARGS)
	$(PYTHON) bench/virtual_time.py

clean:
	rm -rf $(VENV) $(VENV84) .mypy_cache .ruff_cache .pytest_cache
