"""A missing or misnamed connection fails `missing_workflow_backfill` at its first try, naming the
connection and how to add it (issue 17, item 18), under dag.test() against the dev server and chdb.

A missing ClickHouse connection used to fail only when the gaps were recorded: after the
replacements had been started, and retried as if ClickHouse were down.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
from temporal_support import TASK_QUEUE

from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.testing.dag_runs import task_states, xcom

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "missing_workflow_backfill.py"
# A manual dag.test(logical_date=X) run covers [X - 1 day, X).
RUN_DATE = pendulum.datetime(2026, 4, 2, tz="UTC")


def spec(name: str) -> dict:
    return {
        "name": name,
        "workflow_type": "TestWorkflow",
        "task_queue": TASK_QUEUE,
        "id_template": name + "-{key}-{interval_start:%Y%m%d}",
        "keys": ["k1", "k2"],
    }


def replacements(name: str) -> list[str]:
    return [f"{name}-{k}-20260401-backfill-1" for k in ("k1", "k2")]


@pytest.fixture
def parse(airflow_db, temporal_worker, tmp_path, monkeypatch):
    """Parse the DAG after the test has set its environment (connection ids are read at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": str(tmp_path / "chdb")}}),
    )

    def parse_dag():
        bag = DagBag(dag_folder=str(DAG_FILE))
        assert bag.import_errors == {}
        return bag.dags["missing_workflow_backfill"]

    return parse_dag


def assert_failed_first_try(dr, task_id: str, conn_id: str, capfd) -> None:
    states = task_states(dr)
    assert (dr.state, states[task_id], states["summary"]) == ("failed", "failed", "failed"), states
    failed = [ti for ti in dr.get_task_instances() if ti.state == "failed"]
    assert all(ti.try_number == 1 for ti in failed), [(ti.task_id, ti.try_number) for ti in failed]
    out = capfd.readouterr()
    logged = out.out + out.err
    assert f"The Airflow connection '{conn_id}' is not defined" in logged
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in logged and "Retrying cannot help" in logged


@pytest.mark.parametrize(
    ("setting", "conn_id"),
    [(None, "temporal_default"), ("temporal_prod", "temporal_prod")],
    ids=["missing", "misnamed"],
)
def test_a_missing_temporal_connection_fails_find_gaps_at_once(parse, monkeypatch, capfd, setting, conn_id):
    monkeypatch.delenv("AIRFLOW_CONN_TEMPORAL_DEFAULT")
    if setting:
        monkeypatch.setenv("TEMPORAL_CONN_ID", setting)
    dr = parse().test(logical_date=RUN_DATE, run_conf={"spec": spec("connmisstemporal"), "dry_run": False})
    assert task_states(dr)["backfill"] == "upstream_failed"
    assert_failed_first_try(dr, "find_gaps", conn_id, capfd)


def test_a_missing_clickhouse_connection_fails_before_anything_is_started(parse, monkeypatch, capfd):
    monkeypatch.delenv("AIRFLOW_CONN_CLICKHOUSE_DEFAULT")
    dag = parse()
    dr = dag.test(logical_date=RUN_DATE, run_conf={"spec": spec("connmissch"), "dry_run": False})
    assert task_states(dr)["find_gaps"] == "success"
    assert_failed_first_try(dr, "backfill", "clickhouse_default", capfd)
    assert TemporalHook().get_statuses(replacements("connmissch")) == dict.fromkeys(
        replacements("connmissch")
    )


def test_a_misnamed_clickhouse_connection_fails_a_real_run_without_gaps(parse, monkeypatch, capfd):
    """Found on the first real run, not on the first one that happens to have a gap."""
    hook = TemporalHook()
    for key in ("k1", "k2"):
        hook.start_workflow("TestWorkflow", workflow_id=f"connmissnone-{key}-20260401", task_queue=TASK_QUEUE)
        hook.get_result(f"connmissnone-{key}-20260401", timeout=15)
    monkeypatch.setenv("CLICKHOUSE_CONN_ID", "clickhouse_prod")
    dr = parse().test(logical_date=RUN_DATE, run_conf={"spec": spec("connmissnone"), "dry_run": False})
    assert xcom(dr, "find_gaps")[0]["counts"]["completed"] == 2
    assert_failed_first_try(dr, "backfill", "clickhouse_prod", capfd)


def test_a_dry_run_warns_of_a_missing_clickhouse_connection(parse, monkeypatch, capfd):
    monkeypatch.delenv("AIRFLOW_CONN_CLICKHOUSE_DEFAULT")
    dr = parse().test(logical_date=RUN_DATE, run_conf={"spec": spec("connmissdry"), "dry_run": True})
    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    assert sorted(xcom(dr, "summary")["would_start"]) == replacements("connmissdry")
    out = capfd.readouterr()
    assert (
        "A real run would fail: The Airflow connection 'clickhouse_default' is not defined"
        in out.out + out.err
    )
