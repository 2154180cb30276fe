"""TemporalStartWorkflowOperator and TemporalWorkflowSensor, run by dag.test() against the dev server."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pendulum
import pytest
from temporal_support import TASK_QUEUE, wait_until

from airflow_backfill_provider.operators.temporal import TemporalStartWorkflowOperator
from airflow_backfill_provider.sensors.temporal import TemporalWorkflowSensor
from airflow_backfill_provider.testing.dag_runs import register_dag, task_states, xcom


def context(task_id: str, run_id: str = "manual__2026-01-01T00:00:00+00:00"):
    """The slice of a task context the operator reads (for the direct execute()/on_kill() tests)."""
    return {"ti": SimpleNamespace(dag_id="ops", task_id=task_id, run_id=run_id, map_index=-1)}


def started_deferred_id(dag, dr):
    return f"airflow__{dag.dag_id}__start_and_wait_deferred__{dr.run_id}"


def test_operators_and_sensors_under_dag_test(airflow_db, hook, uid, monkeypatch):
    from airflow.sdk import DAG

    from airflow_backfill_provider.triggers.temporal import TemporalWorkflowTrigger

    # A spy, not a mock: it records which triggers ran, lets them run for real, and releases the
    # workflows they wait for only once they wait, so the sensors are sure to have deferred.
    deferred: list[list[str]] = []
    real_run = TemporalWorkflowTrigger.run

    def spy_run(self):
        deferred.append(list(self.workflow_ids))
        held = (
            [f"{uid}-slow-0", f"{uid}-slow-1"]
            if self.query
            else [w for w in self.workflow_ids if "-slow" in w]
        )
        threading.Timer(0.3, lambda: [hook.signal(w, "release") for w in held]).start()
        return real_run(self)

    monkeypatch.setattr(TemporalWorkflowTrigger, "run", spy_run)

    # Same for the reschedule-mode sensor: its workflow is released after its first poke.
    pokes: list[str] = []
    real_poke = TemporalWorkflowSensor.poke

    def spy_poke(self, context):
        if self.task_id == "reschedule_completed":
            if not pokes:
                threading.Timer(0.3, lambda: hook.signal(f"{uid}-later", "release")).start()
            pokes.append(self.task_id)
        return real_poke(self, context)

    monkeypatch.setattr(TemporalWorkflowSensor, "poke", spy_poke)

    done, failed, canceled = f"{uid}-done", f"{uid}-failed", f"{uid}-canceled"
    hook.start_workflow("TestWorkflow", workflow_id=done, task_queue=TASK_QUEUE, args=[{}])
    hook.start_workflow("TestWorkflow", workflow_id=failed, task_queue=TASK_QUEUE, args=[{"mode": "fail"}])
    hook.start_workflow(
        "TestWorkflow", workflow_id=canceled, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    hook.cancel(canceled)
    wait_until(lambda: hook.get_statuses([done, failed, canceled]) and all(
        s and s["status"] != "Running" for s in hook.get_statuses([done, failed, canceled]).values()
    ), what="seed workflows closed")  # fmt: skip

    fast = {"poke_interval": 0.2, "timeout": 60}
    with DAG(f"temporal_ops_{uid}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        common = {"workflow_type": "TestWorkflow", "task_queue": TASK_QUEUE, "retries": 0}
        TemporalStartWorkflowOperator(task_id="start", args=[{"day": "{{ ds }}"}], **common)
        TemporalStartWorkflowOperator(
            task_id="start_and_wait_deferred",
            args=[{"mode": "sleep", "seconds": 1}],
            wait_for_completion=True,
            deferrable=True,
            poll_interval=0.2,
            fetch_result=True,
            **common,
        )
        TemporalStartWorkflowOperator(
            task_id="start_and_wait_fails", args=[{"mode": "fail"}], wait_for_completion=True, **common
        )
        TemporalWorkflowSensor(task_id="poke_completed", workflow_ids=done, retries=0, **fast)
        TemporalWorkflowSensor(task_id="poke_failed", workflow_ids=[done, failed], retries=0, **fast)
        TemporalWorkflowSensor(
            task_id="poke_canceled_allowed", workflow_ids=[canceled], allowed_failures=["Canceled"], **fast
        )
        start_slow = [
            TemporalStartWorkflowOperator(
                task_id=f"start_slow_{n}",
                workflow_id=f"{uid}-slow-{n}",
                args=[{"mode": "wait_signal"}],
                **common,
            )
            for n in range(2)
        ]
        start_slowfail = TemporalStartWorkflowOperator(
            task_id="start_slowfail",
            workflow_id=f"{uid}-slowfail",
            args=[{"mode": "wait_signal_then_fail"}],
            **common,
        )
        start_slow >> TemporalWorkflowSensor(
            task_id="deferred_query_completed",
            query=f"WorkflowId STARTS_WITH '{uid}-slow-'",
            min_matches=2,
            deferrable=True,
            retries=0,
            **fast,
        )
        start_slowfail >> TemporalWorkflowSensor(
            task_id="deferred_failed", workflow_ids=[f"{uid}-slowfail"], deferrable=True, retries=0, **fast
        )
        start_later = TemporalStartWorkflowOperator(
            task_id="start_later", workflow_id=f"{uid}-later", args=[{"mode": "wait_signal"}], **common
        )
        start_later >> TemporalWorkflowSensor(
            task_id="reschedule_completed",
            workflow_ids=[f"{uid}-later"],
            mode="reschedule",
            poke_interval=0.5,
        )
    register_dag(dag)
    dr = dag.test(logical_date=pendulum.datetime(2026, 1, 5, tz="UTC"))

    assert task_states(dr) == {
        "start": "success",
        "start_and_wait_deferred": "success",
        "start_and_wait_fails": "failed",
        "poke_completed": "success",
        "poke_failed": "failed",
        "poke_canceled_allowed": "success",
        "deferred_query_completed": "success",
        "deferred_failed": "failed",
        "start_later": "success",
        "reschedule_completed": "success",
        "start_slow_0": "success",
        "start_slow_1": "success",
        "start_slowfail": "success",
    }
    # The deferrable tasks did wait in the trigger (dag.test runs it in line).
    assert sorted(deferred) == sorted([[f"{uid}-slowfail"], [], [started_deferred_id(dag, dr)]])
    started = xcom(dr, "start")
    assert started["workflow_id"] == f"airflow__{dag.dag_id}__start__{dr.run_id}"
    assert started["started"] is True and started["namespace"] == "default"
    assert hook.get_result(started["workflow_id"], timeout=10) == {"echo": {"day": "2026-01-05"}}
    waited = xcom(dr, "start_and_wait_deferred")
    assert waited["status"] == "Completed" and waited["result"] == {"echo": {"mode": "sleep", "seconds": 1}}
    assert xcom(dr, "poke_completed") == {done: "Completed"}
    assert xcom(dr, "poke_failed", key="statuses") == {done: "Completed", failed: "Failed"}
    assert xcom(dr, "poke_canceled_allowed") == {canceled: "Canceled"}
    assert xcom(dr, "deferred_query_completed") == {
        f"{uid}-slow-0": "Completed",
        f"{uid}-slow-1": "Completed",
    }
    assert xcom(dr, "deferred_failed", key="statuses") == {f"{uid}-slowfail": "Failed"}
    assert xcom(dr, "reschedule_completed") == {f"{uid}-later": "Completed"}
    assert len(pokes) >= 2  # it was rescheduled at least once before the workflow completed


def test_retry_reattaches_and_on_kill_cancels(hook):
    op = TemporalStartWorkflowOperator(
        task_id="long", workflow_type="TestWorkflow", task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    ctx = context("long", run_id=f"manual__{pendulum.now('UTC').isoformat()}")
    first = op.execute(ctx)
    retry = op.execute(ctx)  # an Airflow retry of the same task instance
    assert first["started"] and not retry["started"]
    assert retry["run_id"] == first["run_id"]
    op.on_kill()
    wait_until(lambda: hook.describe(first["workflow_id"])["status"] == "Canceled", what="cancel on kill")


def test_operator_configuration_errors_fail_without_retry(hook):
    from airflow.sdk.exceptions import AirflowFailException

    op = TemporalStartWorkflowOperator(
        task_id="bad", workflow_type="TestWorkflow", task_queue=TASK_QUEUE, id_conflict_policy="MAYBE"
    )
    with pytest.raises(AirflowFailException, match="id_conflict_policy"):
        op.execute(context("bad"))
    op = TemporalStartWorkflowOperator(
        task_id="bad2", workflow_type="TestWorkflow", task_queue=TASK_QUEUE, args="x"
    )
    with pytest.raises(AirflowFailException, match="args must be a list"):
        op.execute(context("bad2"))
    with pytest.raises(ValueError, match="either workflow_ids or query"):
        TemporalWorkflowSensor(task_id="s")
    with pytest.raises(ValueError, match="allowed_failures"):
        TemporalWorkflowSensor(task_id="s", workflow_ids="x", allowed_failures=["Completed"])
