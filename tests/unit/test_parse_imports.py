"""Parsing a DAG file imports no more than Airflow's own floor (issue 18, light task start-up).

Airflow parses the DAG file in the dag processor on every cycle and in every task process before
the task runs; each import made at parse time is paid by every task. So the hooks, drivers,
pyarrow and the SQLAlchemy dialects are imported inside the tasks that use them. Each case parses
a DAG file in a fresh interpreter and compares the modules it loaded with those of a do-nothing
DAG using the same Airflow features (a cron timetable, ``@task``, a mapped operator, a trigger
rule, an asset with a URI): Airflow itself loads every provider's ``get_provider_info`` and asset
handlers, and that floor is not ours to cut.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ("wonderware_backfill", "wonderware_sync", "missing_workflow_backfill", "k8s_job_backfill")
FLOOR_DAG = """
from datetime import datetime, timezone
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import Asset, BaseOperator, CronDataIntervalTimetable, TriggerRule, dag, task

@dag(schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
     start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), params={"x": 1})
def floor():
    @task
    def a():
        return [{}]

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[Asset(name="x", uri="clickhouse://c/t")])
    def b(x):
        return x

    TimeDeltaSensor(task_id="s", delta=None) >> b(BaseOperator.partial(task_id="m").expand_kwargs(a()))

floor()
"""
_PROBE = """
import json, runpy, sys
runpy.run_path(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""
# What a task needs only when it runs: drivers, engines, data libraries, provider hooks.
HEAVY = (
    "pandas", "pyarrow", "numpy", "polars", "sqlglot",
    "sqlalchemy.dialects.mssql", "sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite",
    "pymssql", "mssql_python", "pyodbc", "psycopg2", "psycopg",
    "clickhouse_connect", "chdb", "temporalio", "kubernetes", "kubernetes_asyncio", "redis", "requests",
    "airflow.providers.microsoft.mssql.hooks", "airflow.providers.common.sql.hooks",
    "airflow.providers.clickhousedb.hooks", "airflow.providers.cncf.kubernetes.hooks",
    "airflow.providers.redis.hooks",
    "airflow_backfill_provider.hooks.wonderware", "airflow_backfill_provider.hooks.clickhouse",
    "airflow_backfill_provider.hooks.kubernetes", "airflow_backfill_provider.hooks.airflow_api",
    "airflow_backfill_provider.historian.queries", "airflow_backfill_provider.historian.transfer",
    "airflow_backfill_provider.historian.readers",
)  # fmt: skip
# Settings of one DAG must not import (and check) another's, except where one DAG drives the other:
# the sync writes into wonderware_backfill's table and triggers it, so it reads its settings.
SHARED_SETTINGS = {"wonderware_sync": {"wonderware_backfill"}}
SETTINGS = {
    "wonderware_backfill": "airflow_backfill_provider.settings.wonderware_backfill",
    "wonderware_sync": "airflow_backfill_provider.settings.wonderware_sync",
    "missing_workflow_backfill": "airflow_backfill_provider.settings.missing_workflow_backfill",
    "k8s_job_backfill": "airflow_backfill_provider.settings.k8s_job_backfill",
}


def loaded_by_parsing(path: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def floor(tmp_path_factory) -> set[str]:
    path = tmp_path_factory.mktemp("floor") / "floor_dag.py"
    path.write_text(FLOOR_DAG)
    return loaded_by_parsing(path)


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("dag_id", DAGS)
def test_parsing_a_dag_file_imports_nothing_heavy_beyond_airflows_floor(dag_id, floor):
    loaded = loaded_by_parsing(ROOT / "dags" / f"{dag_id}.py")
    assert heavy(loaded - floor) == []
    others = {m for d, m in SETTINGS.items() if d != dag_id and d not in SHARED_SETTINGS.get(dag_id, ())}
    assert SETTINGS[dag_id] in loaded and not others & loaded, sorted(others & loaded)
    # Besides the provider's own modules and Airflow's (its providers' hooks are in HEAVY), what the
    # file adds to the floor is a few small modules of the standard library.
    extra = {m.split(".")[0] for m in loaded - floor} - {"airflow_backfill_provider", "airflow"}
    assert extra <= {"difflib"}, sorted(extra)


def test_the_probe_sees_a_heavy_import(tmp_path, floor):
    """The check can fail: a DAG file importing a hook at the top is caught."""
    path = tmp_path / "heavy_dag.py"
    path.write_text(FLOOR_DAG + "\nfrom airflow_backfill_provider.hooks.wonderware import WonderwareHook\n")
    assert "airflow_backfill_provider.hooks.wonderware" in heavy(loaded_by_parsing(path) - floor)
