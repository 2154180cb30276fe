"""A refused password or an unknown database fails the task at its first try, in words: Airflow's
retries cannot fix a setting (a PostgreSQL historian with password authentication, real runs)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pendulum
import pytest

PASSWORD = "right-pw-4d1c"
JAN2 = datetime(2025, 1, 2, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def password_historian():
    """A small simulated historian on a PostgreSQL that wants a password; its URL without it."""
    from airflow_backfill_provider.testing.services import create_database, postgres_server
    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    config = SimulatorConfig(start=datetime(2025, 1, 1), end=datetime(2025, 1, 2), tags=4, rate=3600)
    with postgres_server(password=PASSWORD) as server:
        url = create_database(server, "historian")
        simulate(url, config, replace=True)
        yield url.replace(f":{PASSWORD}@", "@")


@pytest.fixture
def source(monkeypatch, chdb_path, password_historian):
    def connect(password: str, database: str = "historian") -> None:
        url = password_historian.rsplit("/", 1)[0] + f"/{database}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_WONDERWARE_DEFAULT",
            json.dumps(
                {
                    "conn_type": "wonderware",
                    "login": "postgres",
                    "password": password,
                    "extra": {"sqlalchemy_dsn": url},
                }
            ),
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
            json.dumps({"conn_type": "chdb", "extra": {"chdb_path": chdb_path}}),
        )

    return connect


@pytest.mark.parametrize(
    "password, database, words",
    [
        ("wrong-pw-canary", "historian", "the server refused the password of 'postgres'"),
        (PASSWORD, "no_such_db", "the database 'no_such_db' does not exist"),
    ],
)
def test_plan_fails_at_its_first_try(dagbag, source, password, database, words, capsys):
    from airflow.dag_processing.dagbag import DagBag

    source(password, database)
    dag = DagBag(dag_folder=dagbag.dag_folder).get_dag("wonderware_backfill")
    assert dag.get_task("plan").retries == 1  # the conftest's setting: a retry would happen
    dr = dag.test(logical_date=pendulum.instance(JAN2))
    (plan,) = [ti for ti in dr.get_task_instances() if ti.task_id == "plan"]
    assert dr.state == "failed" and plan.state == "failed"
    assert plan.try_number == 1, "a configuration error was retried"
    logged = capsys.readouterr().out
    assert words in logged and "Login, Password or Database" in logged
    assert "wrong-pw-canary" not in logged


def test_the_operator_fails_without_retry_on_a_refused_password(source):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

    source("wrong-pw-canary")
    window = {"window_start": "2025-01-01T00:00:00+00:00", "window_end": "2025-01-01T06:00:00+00:00"}
    for dry_run in (True, False):
        op = WonderwareToClickHouseOperator(task_id=f"load_{dry_run}", tags=["T1"], dry_run=dry_run, **window)
        with pytest.raises(AirflowFailException, match="refused the password of 'postgres'") as err:
            op.execute(context={})
        assert "wrong-pw-canary" not in str(err.value)
