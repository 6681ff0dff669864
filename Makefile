# The two commands a new user runs: `make demo` and `make test`.
# Each creates the virtualenvs it needs from scratch when they are missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_FLAGS := --disable-pip-version-check -q
PYTEST_ARGS ?=
# Each stage's output, and the table scripts/test-summary.sh reads (gitignored).
LOGS := .test-logs
export TEST_LOGS := $(LOGS)
STAGE := bash scripts/test-stage.sh

# The minor versions `make test` runs on: every CPython from 3.11 to 3.14 that
# scripts/pythons.sh finds (pyenv, else PATH), e.g. "3.11 3.12 3.13";
# TEST_PYTHONS="3.12" runs on fewer. Looked up once, and only by the targets
# that use it. The default $(PYTHON) runs its own minor version in .venv;
# each other one gets .venv-3.X, made from the interpreter pythons.sh finds.
TEST_PYTHONS ?= $(eval TEST_PYTHONS := $(shell ONELOOP_REQUIRE_PYTHONS= bash scripts/pythons.sh --minors))$(TEST_PYTHONS)
DEFAULT_MINOR = $(eval DEFAULT_MINOR := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))$(DEFAULT_MINOR)
OLDEST = $(firstword $(sort $(TEST_PYTHONS)))
venv_of = $(if $(filter $(1),$(DEFAULT_MINOR)),$(VENV),.venv-$(1))
# pytest 8.4 runs on the oldest: .venv-pytest84-3.11.
VENV84 = .venv-pytest84-$(OLDEST)
python_of = $(if $(filter $(1),$(DEFAULT_MINOR)),$(PYTHON),"$$(bash scripts/pythons.sh $(1))")
PG_URL = "$$(bash scripts/ensure-postgres.sh)"

.PHONY: demo test test-stages lint types pytest pytest84 pytest84-unit pytest84-integration \
  pytest-uvloop pytest-public-loop pytest-example postgres clean compat bench
# Prerequisites such as $$(call venv_of,$$*) are expanded when the target is made.
.SECONDEXPANSION:
# Made by pattern rules, but not intermediate files to delete at the end.
.PRECIOUS: .venv-3.%/.installed .venv-pytest84-%/.installed pytest-unit@% pytest-integration@% pytest-example-sqlite@% \
  pytest-example-integration@%

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -U pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[postgres]' --group test --group lint
	touch $@

.venv-3.%/.installed: pyproject.toml
	py=$(call python_of,3.$*); "$$py" -m venv $(@D)
	$(@D)/bin/python -m pip install $(PIP_FLAGS) -U pip
	$(@D)/bin/python -m pip install $(PIP_FLAGS) -e '.[postgres]' --group test
	touch $@

.venv-pytest84-%/.installed: pyproject.toml
	py=$(call python_of,$*); "$$py" -m venv $(@D)
	$(@D)/bin/python -m pip install $(PIP_FLAGS) -U pip
	$(@D)/bin/python -m pip install $(PIP_FLAGS) -e '.[postgres]' --group test 'pytest==8.4.*'
	touch $@

# The example app's suite on embedded SQLite; its integration tests are
# skipped, and the summary says how to run them.
demo: $(VENV)/.installed
	$(BIN)/pytest examples/bookshelf -p no:cacheprovider -v -rs

lint: $(VENV)/.installed
	$(STAGE) lint $(VENV) $(BIN)/ruff check .
	$(STAGE) format $(VENV) $(BIN)/ruff format --check .

types: $(VENV)/.installed
	$(STAGE) types $(VENV) $(BIN)/mypy

# PostgreSQL is installed (Debian's package) and started when missing.
postgres:
	bash scripts/ensure-postgres.sh >/dev/null

# The stages of one minor version 3.X: `make pytest@3.12`, `make pytest-uvloop@3.12`,
# `make pytest-example@3.12`. Without the suffix, on the default $(PYTHON).
pytest: pytest@$$(DEFAULT_MINOR)
pytest-uvloop: pytest-uvloop@$$(DEFAULT_MINOR)
pytest-public-loop: pytest-public-loop@$$(DEFAULT_MINOR)
pytest-example: pytest-example@$$(DEFAULT_MINOR)

# The unit suite, then the --integration group against PostgreSQL.
pytest@%: pytest-unit@% pytest-integration@% ;

pytest-unit@%: $$(call venv_of,$$*)/.installed postgres
	ONELOOP_TEST_PG_URL=$(PG_URL) \
	  $(STAGE) unit $(call venv_of,$*) $(call venv_of,$*)/bin/pytest -n 2 $(PYTEST_ARGS)

pytest-integration@%: $$(call venv_of,$$*)/.installed postgres
	ONELOOP_TEST_PG_URL=$(PG_URL) \
	  $(STAGE) integration $(call venv_of,$*) $(call venv_of,$*)/bin/pytest -n 2 --integration $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ]  # 5: no integration test selected

pytest84: pytest84-unit pytest84-integration

pytest84-unit: $$(VENV84)/.installed postgres
	ONELOOP_TEST_PG_URL=$(PG_URL) \
	  $(STAGE) pytest84-unit $(VENV84) $(VENV84)/bin/pytest -n 2 $(PYTEST_ARGS)

pytest84-integration: $$(VENV84)/.installed postgres
	ONELOOP_TEST_PG_URL=$(PG_URL) \
	  $(STAGE) pytest84-integration $(VENV84) $(VENV84)/bin/pytest -n 2 --integration $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ]  # 5: no integration test selected

# The core suite once more with the session loop made by uvloop.
pytest-uvloop@%: $$(call venv_of,$$*)/.installed
	ONELOOP_TEST_LOOP_FACTORY=uvloop:new_event_loop \
	  $(STAGE) uvloop $(call venv_of,$*) \
	  $(call venv_of,$*)/bin/pytest -n 2 tests/test_hooks.py tests/test_tasks.py tests/test_hygiene.py $(PYTEST_ARGS)

# The core suite once more with asyncio's loop driven through
# run_until_complete only (oneloop_fast_loop = false), on the oldest Python.
pytest-public-loop@%: $$(call venv_of,$$*)/.installed
	ONELOOP_TEST_FAST_LOOP=false \
	  $(STAGE) public-loop $(call venv_of,$*) \
	  $(call venv_of,$*)/bin/pytest -n 2 tests/test_hooks.py tests/test_tasks.py tests/test_spin.py $(PYTEST_ARGS)

# The example app's suite on SQLite, then its integration tests on PostgreSQL.
pytest-example@%: pytest-example-sqlite@% pytest-example-integration@% ;

pytest-example-sqlite@%: $$(call venv_of,$$*)/.installed
	$(STAGE) example $(call venv_of,$*) $(call venv_of,$*)/bin/pytest examples/bookshelf -p no:cacheprovider

pytest-example-integration@%: $$(call venv_of,$$*)/.installed postgres
	$(STAGE) example-integration $(call venv_of,$*) \
	  $(call venv_of,$*)/bin/pytest examples/bookshelf -p no:cacheprovider --integration \
	  --db-url $(PG_URL) || [ $$? -eq 5 ]  # 5: no integration test selected

# Lint and types once, then every stage on each Python of TEST_PYTHONS, and
# pytest 8.4 on the oldest. A failed stage does not stop the others (make -k);
# the last line lists the versions that ran with their counts, and the exit
# status is non-zero when anything failed. ONELOOP_REQUIRE_PYTHONS="3.11 3.12"
# fails at once when one of them is missing.
test:
	@rm -rf $(LOGS) && mkdir -p $(LOGS)
	@bash scripts/pythons.sh | awk '{print "make test: found Python " $$3 " (" $$2 ")"}'
	@[ -n "$(TEST_PYTHONS)" ] || { echo "make test: no CPython 3.11 to 3.14 found" >&2; exit 1; }
	@start=$$(date +%s) status=0; \
	  $(MAKE) --no-print-directory -k test-stages TEST_PYTHONS="$(TEST_PYTHONS)" || status=$$?; \
	  bash scripts/test-summary.sh $(LOGS) $$status $$start $(TEST_PYTHONS); \
	  exit $$status

test-stages: lint types $$(foreach m,$$(TEST_PYTHONS),pytest@$$m pytest-uvloop@$$m pytest-example@$$m \
  $$(if $$(filter $$m,$$(OLDEST)),pytest84 pytest-public-loop@$$m))

# Real projects' suites under pytest-asyncio, under this tree, and under this
# tree after `pytest-oneloop migrate` (needs PyPI; about 50 minutes; not part
# of `test`): writes bench/compat/results.md.
compat:
	$(PYTHON) bench/compat/run_all.py $(COMPAT_ARGS)

# Overhead against pytest-asyncio and anyio, side by side (needs PyPI; 15 to
# 35 minutes on 2 cores, most of it bench/db_isolation.py; not part of `test`):
# writes bench/results.md and bench/results.png. BENCH_ARGS=--quick: smoke run.
bench:
	$(PYTHON) bench/overhead.py $(BENCH_ARGS)
	$(PYTHON) bench/virtual_time.py

clean:
	rm -rf $(VENV) .venv-3.* .venv-pytest84* $(LOGS) .mypy_cache .ruff_cache .pytest_cache
