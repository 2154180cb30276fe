"""Intervals older than the namespace's retention (issue 17, item 7), against the dev server and chdb.

Temporal deletes a closed execution, and its visibility record, once the namespace's retention has
passed since it closed. The tests reproduce that: workflows of an interval that ended 3 days ago
complete, then are deleted as the 1-day retention of ``short-retention`` would have deleted them.
Without the check, every key of that interval was classified ``missing`` and replaced although its
work was done; now the interval is refused, dry run or not, unless ``allow_beyond_retention``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest
from temporal_support import SHORT_RETENTION_NAMESPACE, TASK_QUEUE, wait_until

from airflow_backfill_provider.hooks.temporal import TemporalHook, TemporalWorkflowNotFoundError
from airflow_backfill_provider.testing.dag_runs import task_states, xcom

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "missing_workflow_backfill.py"
KEYS = ["acme", "beta"]
TODAY = pendulum.now("UTC").start_of("day")
# An interval that ended 3 days ago: beyond the 1-day retention, all of it.
OLD_START, OLD_END = TODAY - timedelta(days=4), TODAY - timedelta(days=3)


def spec(name: str) -> dict:
    return {
        "name": name,
        "workflow_type": "TestWorkflow",
        "task_queue": TASK_QUEUE,
        "namespace": SHORT_RETENTION_NAMESPACE,
        "id_template": name + "-{key}-{interval_start:%Y%m%d}",
        "keys": KEYS,
    }


def ids(name: str, start: datetime = OLD_START) -> list[str]:
    return [f"{name}-{k}-{start:%Y%m%d}" for k in KEYS]


def replacements(name: str, start: datetime = OLD_START) -> list[str]:
    return [i + "-backfill-1" for i in ids(name, start)]


# The specs whose keys' executions of the old interval completed, then were deleted.
FORGOTTEN = ("opforgot", "opallow", "dagforgot", "dagdry", "dagallow")


@pytest.fixture
def short(temporal_worker) -> TemporalHook:
    return TemporalHook(namespace=SHORT_RETENTION_NAMESPACE)


@pytest.fixture(scope="module")
def forgotten(temporal_worker) -> None:
    """All at once: the dev server takes about 30 s to carry out a deletion."""
    complete_then_forget(
        TemporalHook(namespace=SHORT_RETENTION_NAMESPACE), [wid for name in FORGOTTEN for wid in ids(name)]
    )


def complete_then_forget(hook: TemporalHook, workflow_ids: list[str]) -> None:
    """Run each workflow to completion, then delete it, as Temporal does once the retention passed."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

    for wid in workflow_ids:
        hook.start_workflow("TestWorkflow", workflow_id=wid, task_queue=TASK_QUEUE, args=[{}])
    for wid in workflow_ids:
        assert hook.get_result(wid, timeout=15) == {"echo": {}}
        run_id = hook.describe(wid)["run_id"]
        hook.run(
            lambda client, wid=wid, run_id=run_id: client.workflow_service.delete_workflow_execution(
                DeleteWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=wid, run_id=run_id),
                )
            )
        )

    def gone() -> bool:
        listed = hook.list_executions(" OR ".join(f"WorkflowId = '{wid}'" for wid in workflow_ids))
        return not listed and all(v is None for v in hook.get_statuses(workflow_ids).values())

    wait_until(gone, timeout=120, what="completed executions deleted")


def context(start: datetime, end: datetime) -> dict:
    return {
        "ti": SimpleNamespace(dag_id="d", task_id="find", run_id="r", map_index=-1),
        "data_interval_start": start,
        "data_interval_end": end,
    }


def test_the_hook_reads_the_namespace_retention(short):
    assert short.describe_namespace() == {
        "namespace": SHORT_RETENTION_NAMESPACE,
        "retention": timedelta(days=1),
        "state": "Registered",
    }
    assert TemporalHook(namespace="backfill").describe_namespace()["retention"] == timedelta(days=3650)
    ok, message = short.test_connection()
    assert ok and message.endswith(
        f"namespace '{SHORT_RETENTION_NAMESPACE}', which keeps closed workflows for 1 day"
    )


def test_an_interval_beyond_retention_is_refused_saying_why(forgotten):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.operators.workflow_backfill import TemporalFindWorkflowGapsOperator

    op = TemporalFindWorkflowGapsOperator(task_id="find", spec=spec("opforgot"))
    with pytest.raises(AirflowFailException) as refused:
        op.execute(context(OLD_START, OLD_END))
    message = str(refused.value)
    assert f"[{OLD_START.isoformat()}, {OLD_END.isoformat()})" in message
    assert f"namespace '{SHORT_RETENTION_NAMESPACE}'" in message
    assert "retention is 1 day" in message
    assert "allow_beyond_retention" in message


def test_the_override_checks_it_anyway_and_keys_temporal_forgot_look_missing(forgotten):
    """What the DAG did with every such interval before the check: the work was done, yet 'missing'."""
    from airflow_backfill_provider.operators.workflow_backfill import TemporalFindWorkflowGapsOperator

    op = TemporalFindWorkflowGapsOperator(task_id="find", spec=spec("opallow"), allow_beyond_retention=True)
    (found,) = op.execute(context(OLD_START, OLD_END))
    assert found["counts"]["missing"] == 2 and found["counts"]["completed"] == 0
    assert (found["beyond_retention"], found["retention_seconds"]) == (True, 86400)


def test_an_interval_partly_beyond_retention_is_refused_too(short):
    """Executions that closed in its first hours may be gone already: refused as a whole."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_backfill_provider.operators.workflow_backfill import TemporalFindWorkflowGapsOperator

    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=30), now - timedelta(hours=6)
    op = TemporalFindWorkflowGapsOperator(
        task_id="find", spec=spec("oppartly"), interval_start=start.isoformat(), interval_end=end.isoformat()
    )
    with pytest.raises(AirflowFailException, match="starts before .* retention is 1 day"):
        op.execute({"ti": SimpleNamespace(dag_id="d", task_id="find", run_id="r", map_index=-1)})


def test_an_interval_within_retention_is_checked(short):
    from airflow_backfill_provider.operators.workflow_backfill import TemporalFindWorkflowGapsOperator

    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=20), now - timedelta(hours=2)
    short.start_workflow("TestWorkflow", workflow_id=f"opwithin-acme-{start:%Y%m%d}", task_queue=TASK_QUEUE)
    short.get_result(f"opwithin-acme-{start:%Y%m%d}", timeout=15)
    (found,) = TemporalFindWorkflowGapsOperator(task_id="find", spec=spec("opwithin")).execute(
        context(start, end)
    )
    classes = {k["resource_id"]: k["classification"] for k in found["keys"]}
    assert classes == {"acme": "completed", "beta": "missing"}
    assert (found["beyond_retention"], found["retention_seconds"]) == (False, 86400)


# --- the DAG ---------------------------------------------------------------------------------------


@pytest.fixture
def dag(airflow_db, temporal_worker, tmp_path, monkeypatch):
    """A freshly parsed DAG (Params of an earlier run's conf must not stick) and a fresh chdb."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": str(tmp_path / "chdb")}}),
    )
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["missing_workflow_backfill"]


def refused_run(dag, capfd, name: str, **conf):
    """A manual run of the old interval; asserts it was refused at the first try, saying why."""
    dr = dag.test(logical_date=OLD_END, run_conf={"spec": spec(name), **conf})
    assert (dr.data_interval_start, dr.data_interval_end) == (OLD_START, OLD_END)
    states = task_states(dr)
    assert (dr.state, states["find_gaps"], states["backfill"], states["summary"]) == (
        "failed",
        "failed",
        "upstream_failed",
        "failed",
    ), states
    assert [ti.try_number for ti in dr.get_task_instances() if ti.task_id == "find_gaps"] == [1]
    out = capfd.readouterr()
    logged = out.out + out.err
    assert f"The interval [{OLD_START.isoformat()}, {OLD_END.isoformat()}) of spec '{name}'" in logged
    assert f"namespace '{SHORT_RETENTION_NAMESPACE}'" in logged and "retention is 1 day" in logged
    assert '"allow_beyond_retention": true' in logged
    return dr


def test_the_dag_refuses_an_interval_beyond_retention_and_starts_nothing(dag, forgotten, short, capfd):
    refused_run(dag, capfd, "dagforgot", dry_run=False)
    assert short.get_statuses(replacements("dagforgot")) == dict.fromkeys(replacements("dagforgot"))
    with pytest.raises(TemporalWorkflowNotFoundError):
        short.describe(replacements("dagforgot")[0])


def test_a_dry_run_is_refused_the_same_way(dag, forgotten, capfd):
    refused_run(dag, capfd, "dagdry", dry_run=True)


def test_the_dag_param_allows_it(dag, forgotten, capfd):
    dr = dag.test(
        logical_date=OLD_END,
        run_conf={"spec": spec("dagallow"), "dry_run": False, "allow_beyond_retention": True},
    )
    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    summary = xcom(dr, "summary")
    assert summary["counts"]["missing"] == 2 and sorted(summary["started"]) == replacements("dagallow")
    assert summary["recorded"] == 2
    out = capfd.readouterr()
    assert "allow_beyond_retention is set" in out.out + out.err
