"""The missing_workflow_backfill DAG under dag.test(), against the dev server and embedded ClickHouse."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from temporal_support import TASK_QUEUE, wait_until

from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.testing.dag_runs import task_states, xcom

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "missing_workflow_backfill.py"
NAMESPACE = "backfill"
# A manual dag.test(logical_date=X) run covers [X - 1 day, X).
RUN_DATE = pendulum.datetime(2026, 1, 2, tz="UTC")
KEYS = ["acme", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
SPEC = {
    "name": "reindex",
    "workflow_type": "TestWorkflow",
    "task_queue": TASK_QUEUE,
    "namespace": NAMESPACE,
    "id_template": "reindexconversations-{customer}-{interval_start:%Y%m%d}",
    "key_name": "customer",
    "keys": KEYS,
    "max_running": "1h",
}
GAPS = {"beta": "failed", "gamma": "timed_out", "delta": "missing", "zeta": "terminated", "eta": "canceled"}


def wid(key: str, day: str = "20260101") -> str:
    return f"reindexconversations-{key}-{day}"


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["missing_workflow_backfill"]


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("chdb") / "db"
    mp = pytest.MonkeyPatch()
    mp.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": str(path)}}),
    )
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    yield ClickHouseBackfillHook()
    mp.undo()


def requests(ch) -> list[dict]:
    with ch.session() as client:
        exists = client.command("EXISTS TABLE backfill_requests")
        if not exists:
            return []
        result = client.query("SELECT * FROM backfill_requests ORDER BY resource_id")
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@pytest.fixture(scope="module")
def seeded(temporal_worker):
    """Interval 2026-01-01: acme completed, beta failed, gamma timed out, delta absent,
    epsilon running, zeta terminated, eta canceled."""
    hook = TemporalHook(namespace=NAMESPACE)
    modes = {"acme": {}, "beta": {"mode": "fail"}, "epsilon": {"mode": "wait_signal"}}
    modes.update({"zeta": {"mode": "wait_signal"}, "eta": {"mode": "wait_signal"}})
    for key, params in modes.items():
        hook.start_workflow("TestWorkflow", workflow_id=wid(key), task_queue=TASK_QUEUE, args=[params])
    hook.start_workflow(
        "TestWorkflow",
        workflow_id=wid("gamma"),
        task_queue=TASK_QUEUE,
        args=[{"mode": "sleep"}],
        execution_timeout=timedelta(seconds=1),
    )
    hook.terminate(wid("zeta"), reason="seed")
    hook.cancel(wid("eta"))
    expected = {"acme": "Completed", "beta": "Failed", "gamma": "TimedOut", "epsilon": "Running"}
    expected.update({"zeta": "Terminated", "eta": "Canceled"})

    def visible():
        runs = hook.list_executions("WorkflowId STARTS_WITH 'reindexconversations-'")
        return {r["workflow_id"]: r["status"] for r in runs} == {wid(k): s for k, s in expected.items()}

    wait_until(visible, what="seeded executions visible with their final statuses")
    yield hook
    hook.terminate(wid("epsilon"))


def test_dag_integrity(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert set(dag.task_dict) == {"settle", "resolve_spec", "find_gaps", "backfill", "summary"}
    # A triggered run is a dry run unless asked otherwise (issue 9); scheduled runs and backfills are not.
    assert dag.params["dry_run"] is True


def test_backfills_exactly_the_gaps_once(dag, seeded, clickhouse):
    hook = seeded
    dr = dag.test(logical_date=RUN_DATE, run_conf={"spec": SPEC, "dry_run": False})
    assert task_states(dr) == dict.fromkeys(
        ["settle", "resolve_spec", "find_gaps", "backfill", "summary"], "success"
    )
    assert (dr.data_interval_start, dr.data_interval_end) == (RUN_DATE - timedelta(days=1), RUN_DATE)

    (found,) = xcom(dr, "find_gaps")
    classes = {k["resource_id"]: k["classification"] for k in found["keys"]}
    assert classes == {"acme": "completed", "epsilon": "running", **GAPS}
    summary = xcom(dr, "summary")
    assert summary["counts"] == {
        "completed": 1, "running": 1, "running_too_long": 0, "failed": 1, "timed_out": 1,
        "terminated": 1, "canceled": 1, "missing": 1,
    }  # fmt: skip
    replacements = sorted(wid(k) + "-backfill-1" for k in GAPS)
    assert sorted(summary["started"]) == replacements and summary["attached"] == []
    assert summary["recorded"] == 5

    # Each replacement ran once, with the interval in its arguments.
    for r in replacements:
        assert hook.get_result(r, timeout=10)["echo"]["interval_start"] == "2026-01-01T00:00:00+00:00"
    wait_until(
        lambda: hook.count_executions(f"WorkflowId IN ({', '.join(repr(r) for r in replacements)})") == 5,
        what="five replacement executions",
    )
    rows = requests(clickhouse)
    assert [(r["resource_id"], r["previous_status"], r["replacement_workflow_id"]) for r in rows] == sorted(
        (k, GAPS[k], wid(k) + "-backfill-1") for k in GAPS
    )
    beta = next(r for r in rows if r["resource_id"] == "beta")
    assert beta["namespace"] == NAMESPACE and beta["previous_workflow_id"] == wid("beta")
    assert beta["interval_start"].isoformat().startswith("2026-01-01T00:00:00")
    assert "no success point" in beta["reason"] and beta["dag_run_id"] == dr.run_id

    # Running it again starts nothing and records nothing new.
    again = dag.test(logical_date=RUN_DATE, run_conf={"spec": SPEC, "dry_run": False})
    assert task_states(again)["summary"] == "success"
    summary = xcom(again, "summary")
    assert summary["started"] == [] and summary["recorded"] == 0
    assert hook.count_executions("WorkflowId STARTS_WITH 'reindexconversations-'") == 11
    with clickhouse.session() as client:
        assert client.command("SELECT count() FROM backfill_requests") == 5


def test_dry_run_starts_and_records_nothing(dag, seeded, clickhouse):
    before = len(requests(clickhouse))
    dr = dag.test(logical_date=RUN_DATE + timedelta(days=1), run_conf={"spec": SPEC, "dry_run": True})
    summary = xcom(dr, "summary")
    assert summary["dry_run"] is True and summary["counts"]["missing"] == len(KEYS)
    assert sorted(summary["would_start"]) == sorted(wid(k, "20260102") + "-backfill-1" for k in KEYS)
    assert summary["started"] == [] and summary["recorded"] == 0
    assert seeded.get_statuses([wid(k, "20260102") + "-backfill-1" for k in KEYS]) == {
        wid(k, "20260102") + "-backfill-1": None for k in KEYS
    }
    assert len(requests(clickhouse)) == before


def test_too_many_gaps_start_nothing(dag, seeded, clickhouse):
    dr = dag.test(
        logical_date=RUN_DATE + timedelta(days=2), run_conf={"spec": SPEC, "max_starts": 3, "dry_run": False}
    )
    states = task_states(dr)
    assert (
        states["find_gaps"] == "success" and states["backfill"] == "failed" and states["summary"] == "failed"
    )
    assert (
        seeded.count_executions("WorkflowId STARTS_WITH 'reindexconversations-' AND WorkflowId != ''") == 11
    )


def test_bad_namespace_and_bad_spec_fail_clearly(temporal_worker):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.operators.workflow_backfill import TemporalFindWorkflowGapsOperator

    ctx = {
        "ti": SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1),
        "data_interval_start": RUN_DATE - timedelta(days=1),
        "data_interval_end": RUN_DATE,
    }
    op = TemporalFindWorkflowGapsOperator(task_id="find", spec={**SPEC, "namespace": "nope"})
    with pytest.raises(AirflowFailException, match="namespace 'nope' does not exist"):
        op.execute(ctx)
    op = TemporalFindWorkflowGapsOperator(task_id="find", spec={**SPEC, "id_template": "x-{customer}"})
    with pytest.raises(AirflowFailException, match="must contain"):
        op.execute(ctx)
    op = TemporalFindWorkflowGapsOperator(task_id="find", spec={**SPEC, "extra_query": "Bogus ~ 1"})
    with pytest.raises(AirflowFailException, match="rejected the visibility query"):
        op.execute(ctx)
