"""TemporalWorkflowTrigger: serialisation, and run() driven against the dev server."""

from __future__ import annotations

import asyncio

import pytest
from temporal_support import TASK_QUEUE, wait_until

from airflow_backfill_provider.triggers.temporal import TemporalWorkflowTrigger


def first_event(trigger: TemporalWorkflowTrigger, timeout: float = 20.0) -> dict:
    async def run():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def test_serialize_round_trip():
    from airflow.sdk._shared.module_loading import import_string

    trigger = TemporalWorkflowTrigger(
        workflow_ids=["a", "b"],
        temporal_conn_id="temporal_prod",
        namespace="ingestion",
        poll_interval=3,
        allowed_failures=["Canceled"],
        fetch_result=True,
        cancel_on_kill=True,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_backfill_provider.triggers.temporal.TemporalWorkflowTrigger"
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    # Only primitives, so the triggerer's serialiser stores them as they are.
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in kwargs.values())
    query_kwargs = TemporalWorkflowTrigger(query="WorkflowId STARTS_WITH 'x'", min_matches=2).serialize()[1]
    assert query_kwargs["query"] == "WorkflowId STARTS_WITH 'x'" and query_kwargs["workflow_ids"] == []


def test_needs_exactly_one_target():
    with pytest.raises(ValueError):
        TemporalWorkflowTrigger()
    with pytest.raises(ValueError):
        TemporalWorkflowTrigger(workflow_ids=["a"], query="x")


def test_success_when_the_workflow_completes_and_safe_to_run_twice(hook, uid):
    hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "sleep", "seconds": 1}]
    )
    trigger = TemporalWorkflowTrigger(workflow_ids=[uid], poll_interval=0.2, fetch_result=True)
    event = first_event(trigger)
    assert event["status"] == "success", event
    assert event["statuses"] == {uid: "Completed"} and event["failures"] == {}
    assert event["result"] == {"echo": {"mode": "sleep", "seconds": 1}}
    # A second run (triggerer restart) sees the same state and yields the same event.
    assert first_event(TemporalWorkflowTrigger(**trigger.serialize()[1])) == event


def test_error_when_a_workflow_fails(hook, uid):
    hook.start_workflow(
        "TestWorkflow",
        workflow_id=f"{uid}-bad",
        task_queue=TASK_QUEUE,
        args=[{"mode": "sleep_then_fail", "seconds": 0.5}],
    )
    hook.start_workflow("TestWorkflow", workflow_id=f"{uid}-ok", task_queue=TASK_QUEUE, args=[{}])
    event = first_event(TemporalWorkflowTrigger(workflow_ids=[f"{uid}-ok", f"{uid}-bad"], poll_interval=0.2))
    assert event["status"] == "error"
    assert event["statuses"] == {f"{uid}-ok": "Completed", f"{uid}-bad": "Failed"}
    assert event["failures"] == {f"{uid}-bad": "Failed"}
    assert f"{uid}-bad Failed" in event["message"]
    allowed = first_event(
        TemporalWorkflowTrigger(workflow_ids=[f"{uid}-bad"], poll_interval=0.2, allowed_failures=["Failed"])
    )
    assert allowed["status"] == "success"


def test_query_mode_waits_for_every_match(hook, uid):
    for n in range(2):
        hook.start_workflow(
            "TestWorkflow",
            workflow_id=f"{uid}-{n}",
            task_queue=TASK_QUEUE,
            args=[{"mode": "sleep", "seconds": 0.5 + n}],
        )
    query = f"WorkflowId STARTS_WITH '{uid}-'"
    event = first_event(TemporalWorkflowTrigger(query=query, poll_interval=0.2, min_matches=2))
    assert event["status"] == "success", event
    assert event["statuses"] == {f"{uid}-0": "Completed", f"{uid}-1": "Completed"}


def test_exceptions_become_error_events(temporal_worker):
    event = first_event(TemporalWorkflowTrigger(query="WorkflowId STARTS_WITHX 'x'"))
    assert event["status"] == "error" and "TemporalQueryError" in event["message"]
    event = first_event(TemporalWorkflowTrigger(workflow_ids=["x"], namespace="no-such-namespace"))
    assert event["status"] == "error" and "no-such-namespace" in event["message"]
    assert "statuses" not in event  # tells the sensor it was not a workflow failure


def test_on_kill_cancels_only_when_asked(hook, uid):
    hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    asyncio.run(TemporalWorkflowTrigger(workflow_ids=[uid]).on_kill())
    assert hook.describe(uid)["status"] == "Running"
    asyncio.run(TemporalWorkflowTrigger(workflow_ids=[uid], cancel_on_kill=True).on_kill())
    wait_until(lambda: hook.describe(uid)["status"] == "Canceled", what="cancelled on kill")
