"""A connection that is missing or misnamed fails the task at its first try, naming the connection and
how to add it (it used to be retried as if the source were down, and to end with Airflow's bare
"conn_id isn't defined" minutes later)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pendulum
import pytest

UTC = timezone.utc


def run(dagbag, dag_id: str, logical_date=None, **conf):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=dagbag.dag_folder).get_dag(dag_id)
    return dag.test(
        logical_date=pendulum.instance(logical_date) if logical_date else None, run_conf=conf or None
    )


@pytest.mark.parametrize(
    ("dag_id", "logical_date", "missing", "present"),
    [
        ("wonderware_sync", None, "AIRFLOW_CONN_WONDERWARE_DEFAULT", "AIRFLOW_CONN_CLICKHOUSE_DEFAULT"),
        ("wonderware_sync", None, "AIRFLOW_CONN_CLICKHOUSE_DEFAULT", "AIRFLOW_CONN_WONDERWARE_DEFAULT"),
        (
            "wonderware_backfill",
            datetime(2025, 1, 2, tzinfo=UTC),
            "AIRFLOW_CONN_WONDERWARE_DEFAULT",
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        ),
        (
            "wonderware_backfill",
            datetime(2025, 1, 2, tzinfo=UTC),
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
            "AIRFLOW_CONN_WONDERWARE_DEFAULT",
        ),
    ],
)
def test_a_missing_connection_fails_at_the_first_try_naming_it(
    dagbag, monkeypatch, chdb_path, historian_server, capsys, dag_id, logical_date, missing, present
):
    values = {
        "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(
            {"conn_type": "wonderware", "extra": {"sqlalchemy_dsn": historian_server[0]}}
        ),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": '{"conn_type": "clickhouse", "extra": {"chdb_path": "'
        + chdb_path
        + '"}}',
    }
    monkeypatch.delenv(missing, raising=False)
    monkeypatch.setenv(present, values[present])
    dr = run(dagbag, dag_id, logical_date)
    assert dr.state == "failed"
    failed = [ti for ti in dr.get_task_instances() if ti.state == "failed"]
    assert failed and all(ti.try_number == 1 for ti in failed), [(ti.task_id, ti.try_number) for ti in failed]
    conn_id = missing.removeprefix("AIRFLOW_CONN_").lower()
    logged = capsys.readouterr().out
    assert f"The Airflow connection '{conn_id}' is not defined" in logged
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in logged
