"""Integrity of everything in dags/: imports, settings that matter in production, no I/O at parse."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest


@pytest.fixture(scope="module")
def bag(dagbag):
    return dagbag


def test_no_import_errors(bag):
    assert bag.import_errors == {}
    assert {"wonderware_backfill", "missing_workflow_backfill", "wonderware_sync", "k8s_job_backfill"} <= set(
        bag.dag_ids
    )


def test_every_dag_is_documented_tagged_and_retries(bag):
    for dag_id in bag.dag_ids:
        dag = bag.get_dag(dag_id)
        assert dag.tags, dag_id
        assert dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_wonderware_backfill_has_real_intervals_and_catchup(monkeypatch):
    # Catchup follows the start date since safe defaults (issue 9): set the one this relied on.
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WONDERWARE_BACKFILL_START_DATE", "2025-01-01")
    import os

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag("wonderware_backfill")
    assert dag.catchup is True
    assert dag.start_date == datetime(2025, 1, 1, tzinfo=timezone.utc)
    # an interval timetable: each run covers a whole day, not a zero-width instant (the plain
    # "@daily" string would); test_wonderware_backfill asserts the runs' data intervals
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "fetch_insert", "finalize"]
    assert dag.get_task("finalize").outlets  # the asset downstream transformations schedule on
    assert set(dag.params) >= {
        "range_start",
        "range_end",
        "tag_include",
        "tag_exclude",
        "tag_types",
        "dry_run",
    }


def test_wonderware_sync_runs_every_minute_one_at_a_time_without_catchup(bag):
    dag = bag.get_dag("wonderware_sync")
    assert (dag.catchup, dag.max_active_runs) == (False, 1)
    assert dag.timetable.expression == "* * * * *"
    assert {t.value for t in dag.allowed_run_types} == {"scheduled", "manual"}  # a backfill repeats "now"
    assert [t.task_id for t in dag.topological_sort()] == ["sync", "retroactive"]


def test_wonderware_sync_with_retroactive_on_fails_import_naming_what_is_missing(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WONDERWARE_SYNC_RETROACTIVE", "on")
    monkeypatch.setenv("WONDERWARE_SYNC_HISTORY_START", "2025-01-01")
    monkeypatch.setenv("AIRFLOW_API_CONN_ID", "no_such_api")
    monkeypatch.setenv("CLICKHOUSE_CONN_ID", "no_such_clickhouse")
    import os

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("wonderware_sync.py")]
    assert (
        "WONDERWARE_SYNC_RETROACTIVE is on, but it needs connection 'no_such_api' (AIRFLOW_API_CONN_ID)"
        in error
    )
    assert "connection 'no_such_clickhouse' (CLICKHOUSE_CONN_ID)" in error
    monkeypatch.delenv("WONDERWARE_SYNC_HISTORY_START")
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    (error,) = [e for f, e in bag.import_errors.items() if f.endswith("wonderware_sync.py")]
    assert "neither WONDERWARE_SYNC_HISTORY_START nor WONDERWARE_BACKFILL_START_DATE is set" in error


def test_parsing_opens_no_connection(monkeypatch):
    """DAG files must not touch a database at parse time: parse with connections that cannot work."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_WONDERWARE_DEFAULT",
        '{"conn_type": "wonderware", "extra": {"sqlalchemy_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}}',
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEMPORAL_DEFAULT", '{"conn_type": "temporal", "host": "127.0.0.1", "port": 1}'
    )
    import os

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}


def test_provider_registers_its_hooks_and_connection_types():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    info = pm.providers["airflow-backfill-provider"]
    declared = {c["connection-type"]: c["hook-class-name"] for c in info.data["connection-types"]}
    assert declared["wonderware"] == "airflow_backfill_provider.hooks.wonderware.WonderwareHook"
    assert "clickhouse" not in declared  # reused from apache-airflow-providers-clickhousedb
    wonderware = next(c for c in info.data["connection-types"] if c["connection-type"] == "wonderware")
    assert "sqlalchemy_dsn" in wonderware["conn-fields"]


def test_a_bad_setting_fails_the_parse_naming_the_variable(monkeypatch):
    """A broken deployment shows as an import error that says which variable to fix, and how."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", "many")
    import os

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    errors = "\n".join(bag.import_errors.values())
    assert "WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS must be a positive integer, got 'many'" in errors
    assert "missing_workflow_backfill" in bag.dag_ids and "wonderware_backfill" not in bag.dag_ids


def test_k8s_job_backfill_is_safe_by_default_and_a_bad_setting_names_itself(bag, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    dag = bag.get_dag("k8s_job_backfill")
    assert dag.catchup is False and dag.start_date is None and dag.params["dry_run"] is True
    # `airflow backfill create` needs real intervals
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    monkeypatch.setenv("K8S_JOB_BACKFILL_LOG_TIMEOUT", "soon")
    import os

    errors = "\n".join(DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).import_errors.values())
    assert "K8S_JOB_BACKFILL_LOG_TIMEOUT" in errors and "'soon'" in errors


def test_settings_shape_the_dags(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("WONDERWARE_BACKFILL_TABLE", "plant.History")
    monkeypatch.setenv("CLICKHOUSE_CONN_ID", "ch_prod")
    monkeypatch.setenv("MISSING_WORKFLOW_BACKFILL_SETTLE", "0")
    monkeypatch.setenv("WONDERWARE_BACKFILL_POOL", " historian ")
    import os

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    wonderware = bag.get_dag("wonderware_backfill")
    (asset,) = wonderware.get_task("finalize").outlets
    assert (asset.name, asset.uri) == ("clickhouse_plant.History", "clickhouse://ch_prod/plant.History")
    # the pool caps the chunks (historian sessions) only; the cheap steps keep default_pool
    pools = {t.task_id: t.pool for t in wonderware.tasks}
    assert pools == {
        "plan": "default_pool",
        "fetch_insert": "historian",
        "finalize": "default_pool",
    }
    assert "settle" not in bag.get_dag("missing_workflow_backfill").task_dict
