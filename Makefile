# The README's two commands: `make demo` and `make test`. Both install what they need themselves,
# as do `make ui` and `make rows` (docs/getting-started.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)

.PHONY: install system-deps demo ui rows test lint bench bench-orchestration bench-scale clean

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

# The whole Airflow UI on this machine (scheduler, api-server, dag-processor, triggerer) on the demo's
# SQLite historian and embedded ClickHouse, with the default connections and a login; it prints the
# URL and the login and runs until Ctrl-C. Its state stays in UI_DIR for the next start.
UI_DIR ?= .ui
UI_PORT ?= 8080
ui: install
	$(PY) -m airflow_backfill_provider.testing.local_ui --dir "$(UI_DIR)" --port $(UI_PORT) --dags-folder dags

# Rows per UTC day (BY=tag: per tag) in the embedded ClickHouse of `make ui`, through the provider's hook.
BY ?= day
rows: install
	@$(PY) -m airflow_backfill_provider.testing.clickhouse_rows --chdb-path "$(UI_DIR)/clickhouse" --by $(BY)

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
	rm -rf $(VENV) .demo .ui .bench build *.egg-info
