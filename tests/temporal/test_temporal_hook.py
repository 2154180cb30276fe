"""TemporalHook against a real Temporal dev server, with a worker in the test process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from temporal_support import TASK_QUEUE, wait_until

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.hooks.temporal import (
    TemporalConnectionError,
    TemporalHook,
    TemporalNamespaceNotFoundError,
    TemporalQueryError,
    TemporalWorkflowFailedError,
    TemporalWorkflowNotFoundError,
)

# -- the connection form -------------------------------------------------------------------------


def test_connection_type_is_registered_with_its_form():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()  # validates every provider's info against Airflow's schema on load
    info = pm.hooks["temporal"]
    assert info.hook_class_name == "airflow_backfill_provider.hooks.temporal.TemporalHook"
    assert info.connection_id_attribute_name == "temporal_conn_id" and info.connection_testable
    # (pm.connection_form_widgets would import every provider's hooks: 8 s; read the declaration.)
    (form,) = [
        c
        for c in pm.providers["airflow-backfill-provider"].data["connection-types"]
        if c["connection-type"] == "temporal"
    ]
    fields = ["namespace", "tls", "tls_ca_cert", "tls_client_cert", "tls_server_name", "connect_timeout"]
    assert set(fields) == set(form["conn-fields"])
    # The client key is a secret: it goes in the Password field (masked in the form, the REST API,
    # the Extra JSON view and the CLI's audit log), never in a form field that the Extra JSON mirrors.
    assert form["ui-field-behaviour"]["relabeling"]["password"] == "API key, or mTLS client key (PEM)"
    # Certificates are multi-line PEM: a text area keeps their line breaks.
    assert form["conn-fields"]["tls_client_cert"]["schema"]["format"] == "multiline"
    assert form["conn-fields"]["tls_ca_cert"]["schema"]["format"] == "multiline"


# -- against the dev server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(temporal_worker):
    """Three closed workflows under one prefix: completed, failed, timed out."""
    hook = TemporalHook()
    prefix = "hookseed-"
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    ids = {"Completed": f"{prefix}ok", "Failed": f"{prefix}bad", "TimedOut": f"{prefix}slow"}
    hook.start_workflow("TestWorkflow", workflow_id=ids["Completed"], task_queue=TASK_QUEUE, args=[{}])
    hook.start_workflow(
        "TestWorkflow", workflow_id=ids["Failed"], task_queue=TASK_QUEUE, args=[{"mode": "fail"}]
    )
    hook.start_workflow(
        "TestWorkflow",
        workflow_id=ids["TimedOut"],
        task_queue=TASK_QUEUE,
        args=[{"mode": "sleep"}],
        execution_timeout=timedelta(seconds=1),
    )
    query = f"WorkflowId STARTS_WITH '{prefix}' AND ExecutionStatus != 'Running'"
    wait_until(lambda: hook.count_executions(query) == 3, what="three closed seeded workflows")
    return {"prefix": prefix, "ids": ids, "before": before, "after": datetime.now(timezone.utc)}


def test_connection_ok_and_bad_namespace(hook):
    ok, message = hook.test_connection()
    assert ok, message
    assert "namespace 'default'" in message
    ok, message = TemporalHook(namespace="no-such-namespace").test_connection()
    assert not ok
    assert "no-such-namespace" in message and "does not exist" in message


def test_unreachable_server_is_a_connection_error(monkeypatch, temporal_worker):
    from airflow_backfill_provider.testing.services import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_TEMPORAL_DOWN",
        json.dumps({"conn_type": "temporal", "host": "127.0.0.1", "port": free_port()}),
    )
    with pytest.raises(TemporalConnectionError, match="Cannot connect to Temporal at 127.0.0.1"):
        TemporalHook("temporal_down").count_executions()


def test_flattened_pem_from_the_form_reaches_the_sdk_as_valid_pem(monkeypatch):
    """A key and certificate pasted into one-line form fields (line breaks gone) used to stop the
    SDK at CertificateParseError; rebuilt, the SDK takes them and goes on to dial the server."""
    from temporalio.client import Client
    from temporalio.service import TLSConfig

    from airflow_backfill_provider.temporal.bridge import run_sync
    from airflow_backfill_provider.testing.services import free_port
    from airflow_backfill_provider.testing.tls import client_key_and_cert

    key_pem, cert_pem = client_key_and_cert()
    flat_key, flat_cert = key_pem.replace("\n", " "), cert_pem.replace("\n", " ")
    port = free_port()  # nothing listens: TLS settings are parsed before the dial
    with pytest.raises(RuntimeError, match="CertificateParseError"):
        tls = TLSConfig(client_cert=flat_cert.encode(), client_private_key=flat_key.encode())
        run_sync(Client.connect(f"127.0.0.1:{port}", tls=tls))
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEMPORAL_MTLS",
        json.dumps(
            {
                "conn_type": "temporal",
                "host": "127.0.0.1",
                "port": port,
                "password": flat_key,
                "extra": {"tls_client_cert": flat_cert, "connect_timeout": 5},
            }
        ),
    )
    ok, message = TemporalHook("temporal_mtls").test_connection()
    assert not ok
    assert f"Cannot connect to Temporal at 127.0.0.1:{port}" in message and "this connection" in message
    assert "CertificateParseError" not in message and "Connection refused" in message
    assert "PRIVATE KEY" not in message


def test_list_and_count_by_prefix_status_and_start_time(hook, seeded):
    prefix, ids = seeded["prefix"], seeded["ids"]
    runs = hook.list_executions(f"WorkflowId STARTS_WITH '{prefix}'")
    assert {r["workflow_id"]: r["status"] for r in runs} == {v: k for k, v in ids.items()}
    assert all(r["workflow_type"] == "TestWorkflow" and r["task_queue"] == TASK_QUEUE for r in runs)
    assert hook.count_executions(f"WorkflowId STARTS_WITH '{prefix}'") == 3

    failed = hook.list_executions(f"WorkflowId STARTS_WITH '{prefix}' AND ExecutionStatus = 'Failed'")
    assert [r["workflow_id"] for r in failed] == [ids["Failed"]]
    assert (
        hook.count_executions(
            f"WorkflowId STARTS_WITH '{prefix}' AND (ExecutionStatus = 'TimedOut' OR ExecutionStatus = 'Completed')"
        )
        == 2
    )

    start, end = seeded["before"].isoformat(), seeded["after"].isoformat()
    assert (
        hook.count_executions(
            f"WorkflowId STARTS_WITH '{prefix}' AND StartTime BETWEEN '{start}' AND '{end}'"
        )
        == 3
    )
    assert hook.count_executions(f"WorkflowId STARTS_WITH '{prefix}' AND StartTime > '{end}'") == 0
    assert hook.count_executions(f"WorkflowId STARTS_WITH '{prefix}' AND StartTime >= '{start}'") == 3
    assert len(hook.list_executions(f"WorkflowId STARTS_WITH '{prefix}'", limit=2)) == 2


def test_describe_history_and_history_points(hook, seeded):
    ids = seeded["ids"]
    desc = hook.describe(ids["Completed"])
    assert desc["status"] == "Completed" and desc["run_id"] and desc["close_time"]

    history = hook.fetch_history(ids["Completed"])
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert kinds[0] == "workflow_execution_started_event_attributes"
    assert kinds[-1] == "workflow_execution_completed_event_attributes"
    assert history.to_json_dict()["events"]

    ok = hook.get_history_points(ids["Completed"])
    assert ok.close_status == "Completed" and ok.success_time is not None
    assert ok.start_time <= ok.success_time
    bad = hook.get_history_points(ids["Failed"], desc_run_id(hook, ids["Failed"]))
    assert bad.close_status == "Failed" and bad.success_time is None and bad.start_time
    slow = hook.get_history_points(ids["TimedOut"])
    assert slow.close_status == "TimedOut" and slow.success_time is None


def desc_run_id(hook, workflow_id):
    return hook.describe(workflow_id)["run_id"]


def test_history_points_of_a_running_workflow(hook, uid):
    hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    points = hook.get_history_points(uid)
    assert points.start_time is not None and points.close_status is None
    hook.terminate(uid, reason="test done")


def test_unknown_workflow_is_not_found(hook):
    with pytest.raises(TemporalWorkflowNotFoundError, match="no-such-workflow"):
        hook.describe("no-such-workflow")
    assert hook.get_statuses(["no-such-workflow"]) == {"no-such-workflow": None}


def test_start_twice_with_the_same_id_runs_one(hook, uid):
    first = hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    second = hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    assert first["started"] is True
    assert second == {**first, "started": False}  # re-attached to the running execution

    hook.signal(uid, "release")
    assert hook.get_result(uid, timeout=10) == {"echo": {"mode": "wait_signal"}}
    # Closed now: the default reuse policy still refuses a second execution and re-attaches.
    third = hook.start_workflow("TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{}])
    assert third == {**first, "started": False}
    assert wait_until(lambda: hook.count_executions(f"WorkflowId = '{uid}'") == 1)


def test_failed_only_policy_starts_again_after_a_failure(hook, uid):
    first = hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "fail"}]
    )
    with pytest.raises(TemporalWorkflowFailedError) as info:
        hook.get_result(uid, timeout=10)
    assert info.value.status == "Failed"
    again = hook.start_workflow(
        "TestWorkflow",
        workflow_id=uid,
        task_queue=TASK_QUEUE,
        args=[{}],
        id_reuse_policy="ALLOW_DUPLICATE_FAILED_ONLY",
    )
    assert again["started"] and again["run_id"] != first["run_id"]
    assert hook.get_result(uid, timeout=10) == {"echo": {}}
    # After a success the same policy refuses a third run.
    third = hook.start_workflow(
        "TestWorkflow",
        workflow_id=uid,
        task_queue=TASK_QUEUE,
        args=[{}],
        id_reuse_policy="ALLOW_DUPLICATE_FAILED_ONLY",
    )
    assert third == {**again, "started": False}


def test_signal_cancel_terminate_by_query_with_dry_run(hook, uid):
    for n in range(3):
        hook.start_workflow(
            "TestWorkflow", workflow_id=f"{uid}-{n}", task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
        )
    query = f"WorkflowId STARTS_WITH '{uid}-'"
    wait_until(lambda: hook.count_executions(query) == 3, what="three running workflows visible")

    would = hook.terminate_by_query(query, reason="test", dry_run=True)
    assert sorted(r["workflow_id"] for r in would) == [f"{uid}-0", f"{uid}-1", f"{uid}-2"]
    assert all(hook.describe(f"{uid}-{n}")["status"] == "Running" for n in range(3))

    hook.signal(f"{uid}-0", "release")
    assert hook.get_result(f"{uid}-0", timeout=10)["echo"]["mode"] == "wait_signal"
    hook.cancel(f"{uid}-1")
    wait_until(lambda: hook.describe(f"{uid}-1")["status"] == "Canceled", what="cancel")
    wait_until(lambda: hook.count_executions(f"{query} AND ExecutionStatus = 'Running'") == 1)
    done = hook.terminate_by_query(query, reason="test")
    assert [r["workflow_id"] for r in done] == [f"{uid}-2"]
    assert hook.describe(f"{uid}-2")["status"] == "Terminated"


def test_get_result_timeout_leaves_the_workflow_running(hook, uid):
    hook.start_workflow(
        "TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{"mode": "wait_signal"}]
    )
    with pytest.raises(TimeoutError):
        hook.get_result(uid, timeout=0.3)
    assert hook.describe(uid)["status"] == "Running"
    hook.terminate(uid)


def test_search_attributes_are_typed_and_queryable(hook, uid):
    hook.start_workflow(
        "TestWorkflow",
        workflow_id=uid,
        task_queue=TASK_QUEUE,
        args=[{}],
        search_attributes={"CustomerId": uid},
    )
    found = wait_until(lambda: hook.list_executions(f"CustomerId = '{uid}'"), what="search attribute visible")
    assert [r["workflow_id"] for r in found] == [uid]


def test_bad_query_is_a_clear_configuration_error(hook):
    with pytest.raises(TemporalQueryError, match="STARTS_WITHX") as info:
        hook.list_executions("WorkflowId STARTS_WITHX 'x'")
    assert isinstance(info.value, ConfigurationError)
    with pytest.raises(TemporalQueryError, match="NoSuchAttribute"):
        hook.count_executions("NoSuchAttribute = 'x'")


def test_bad_namespace_is_a_clear_configuration_error(temporal_worker):
    bad = TemporalHook(namespace="no-such-namespace")
    with pytest.raises(TemporalNamespaceNotFoundError, match="namespace 'no-such-namespace' does not exist"):
        bad.list_executions("WorkflowId STARTS_WITH 'x'")
    with pytest.raises(TemporalNamespaceNotFoundError):
        bad.describe("x")


def test_policy_names_are_checked(hook):
    with pytest.raises(ConfigurationError, match="id_reuse_policy"):
        hook.start_workflow("TestWorkflow", workflow_id="x", task_queue=TASK_QUEUE, id_reuse_policy="NOPE")


def test_raw_client_escape_hatch_and_no_deadlock(hook, uid):
    hook.start_workflow("TestWorkflow", workflow_id=uid, task_queue=TASK_QUEUE, args=[{}])

    async def raw(client):
        return await client.get_workflow_handle(uid).result()

    assert hook.run(raw) == {"echo": {}}

    async def nested(client):
        return hook.count_executions()  # a blocking call on the hook's own loop would deadlock

    with pytest.raises(RuntimeError, match=r"await its a\* form"):
        hook.run(nested)
