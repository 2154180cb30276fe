# The README's two commands: `make demo` and `make test`. Both install what they need themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)

.PHONY: install system-deps demo test lint bench bench-orchestration bench-scale clean

$(VENV)/.installed: setup.py requirements-dev.txt
	@if [ -z "$(UV)" ]; then python3 -m pip install -q uv; fi
	uv venv -q --allow-existing -p 3.11 $(VENV) || uv venv -q --allow-existing $(VENV)
	uv pip install -q -p $(PY) -r requirements-dev.txt -e '.[postgres,sqlite,redis,kubernetes,celery,simulator]'
	@# Every Airflow process (scheduler, each task, each test subprocess) imports thousands of
	@# modules; with PYTHONDONTWRITEBYTECODE set (as on CI machines) nothing is ever cached, so
	@# compile once here: it halves the start-up of every task process.
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	@touch $@

install: $(VENV)/.installed

# PostgreSQL server binaries (initdb/pg_ctl) and redis-server for the throwaway test services,
# Chromium for the browser tests (tests/browser: Playwright drives /usr/bin/chromium headless) and
# docker-compose for tests/deploy (`docker-compose config` validates docker-compose.yaml, no engine).
system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(PY) scripts/demo.py

# Two pytest workers (pytest-xdist), whole files each (a module's Temporal server, browser or stack
# stays in one worker): most of the end-to-end tests' time is waiting on the scheduler and task
# processes, so two run side by side even on two cores. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: install system-deps
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests

lint: install
	$(VENV)/bin/ruff check airflow_backfill_provider dags tests scripts
	$(VENV)/bin/ruff format --check airflow_backfill_provider dags tests scripts

# PostgreSQL cases, then the SQL Server cases over the tests' TDS endpoint and Historian emulator
# (a module run from the repository root: it imports tests/support). SQLSERVER_ARGS go to the second.
bench: install system-deps
	$(PY) scripts/bench.py $(ARGS)
	$(PY) -m scripts.bench_sqlserver $(SQLSERVER_ARGS)

bench-orchestration: install
	$(PY) scripts/bench.py --orchestration $(ARGS)

# A module run from the repository root: it imports the tests' ClickHouse endpoint (tests/support).
bench-scale: install system-deps
	$(PY) -m scripts.bench_scale $(ARGS)

clean:
	rm -rf $(VENV) .demo .bench build *.egg-info
