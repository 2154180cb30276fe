"""KubernetesJobFromCronJobOperator and its trigger against kmock's Kubernetes emulator on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_backfill_provider.operators.kubernetes import JOB_XCOM_KEY, KubernetesJobFromCronJobOperator
from airflow_backfill_provider.testing.kubernetes import CRONJOBS, JOBS, PODS, cronjob, pod_for
from airflow_backfill_provider.triggers.kubernetes import KubernetesJobCompleteTrigger

CRONJOB = "cron-batch-reindex-conversations"
LINE = "Created reindex conversations job: name=customers/{c}/profiles/default/jobs/{j}, execution_id={w}, cluster=us-east-1-prod\n"
ENV = {"REINDEX_START_TIME": "2026-01-01T00:00:00+00:00", "REINDEX_END_TIME": "2026-01-02T00:00:00+00:00",
       "RUN_ONLY_FOR_CUSTOMER_IDS": "sunbit"}  # fmt: skip


@dataclass
class TaskInstance:
    """The task-instance fields the operator reads, and the XComs it pushes."""

    run_id: str = "manual__2026-01-02T00:00:00+00:00"
    dag_id: str = "k8s_test"
    task_id: str = "create_job"
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))  # what XCom would store


@pytest.fixture
def cluster(k8s, namespace, monkeypatch):
    """A namespace with the seed's CronJob, and the connection kubernetes_default to it."""
    containers = [
        {"name": "reindex", "image": "reindex:1", "env": [
            {"name": "REINDEX_START_TIME", "value": "2020-01-01T00:00:00Z"},
            {"name": "DB_PASSWORD", "value": "hunter2"},
        ]},
        {"name": "proxy", "image": "proxy:1"},
    ]  # fmt: skip
    k8s.put(CRONJOBS, namespace, cronjob(CRONJOB, namespace, containers=containers))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", k8s.connection(namespace))
    return namespace


def op(**kw) -> KubernetesJobFromCronJobOperator:
    args = {"task_id": "create_job", "cronjob_name": CRONJOB, "cluster": "us-east-1-prod", "customer": "sunbit",
            "env": ENV, "container": "reindex", "poll_interval": 0.05, "log_timeout": 5}  # fmt: skip
    return KubernetesJobFromCronJobOperator(**{**args, **kw})


def one_pod_logging(k8s, namespace, *workflow_ids, phase="Succeeded"):
    def plan(job):
        pod = pod_for(job, "a", phase=phase, namespace=namespace)
        name = job["metadata"]["name"]
        k8s.logs[(namespace, pod["metadata"]["name"], "reindex", False)] = "boot\n" + "".join(
            LINE.format(c="sunbit", j=name, w=w) for w in workflow_ids
        )
        return [pod]

    k8s.pod_plan = plan
    k8s.job_condition = "Complete"


def test_creates_the_job_from_the_template_and_a_retry_reattaches(k8s, cluster):
    one_pod_logging(k8s, cluster, "reindexconversations-sunbit-1", "reindexconversations-sunbit-2")
    ti = TaskInstance()
    result = op().execute({"ti": ti})
    assert result == [
        {"job_resource_name": f"customers/sunbit/profiles/default/jobs/{ti.xcoms[JOB_XCOM_KEY]['job_name']}",
         "workflow_id": f"reindexconversations-sunbit-{i}", "cluster": "us-east-1-prod"}
        for i in (1, 2)
    ]  # fmt: skip

    (post,) = k8s.requests("POST", f"/namespaces/{cluster}/jobs")
    sent = post.data  # the manifest exactly as the emulator received it
    name = sent["metadata"]["name"]
    assert len(name) <= 63 and name.startswith("cron-batch-reindex-conversations-sunbit-")
    assert ti.xcoms[JOB_XCOM_KEY] == {
        "job_name": name, "namespace": cluster, "cluster": "us-east-1-prod", "customer": "sunbit",
        "cronjob": CRONJOB, "created": True, "dry_run": False,
    }  # fmt: skip
    meta = sent["metadata"]
    assert meta["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert meta["annotations"]["airflow-backfill-provider/run-id"] == ti.run_id
    cj = k8s.get(CRONJOBS, cluster, CRONJOB)
    assert meta["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": CRONJOB, "uid": cj["metadata"]["uid"],
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert meta["labels"]["airflow-dag-id"] == "k8s_test" and meta["labels"]["backfill-customer"] == "sunbit"
    assert meta["labels"]["airflow-run-id"].startswith("manual__2026-01-02T00-00-00-00-00")
    reindex, proxy = sent["spec"]["template"]["spec"]["containers"]
    assert reindex["env"] == [{"name": "DB_PASSWORD", "value": "hunter2"}] + [
        {"name": k, "value": v} for k, v in ENV.items()
    ]
    assert "env" not in proxy

    # A retry of the same task instance finds the Job: one Job, the same workflows.
    retry = TaskInstance()
    assert op().execute({"ti": retry}) == result
    assert retry.xcoms[JOB_XCOM_KEY]["created"] is False and retry.xcoms[JOB_XCOM_KEY]["job_name"] == name
    assert k8s.names(JOBS, cluster) == [name]
    # A Job of that name that another run created is not taken over.
    with pytest.raises(AirflowFailException, match=f"Job {name} already exists in namespace {cluster} of cluster "
                       "us-east-1-prod but was not created for this run"):  # fmt: skip
        op(job_name=name).execute({"ti": TaskInstance(run_id="manual__other")})
    # Another run is another Job.
    op().execute({"ti": TaskInstance(run_id="manual__2026-01-03T00:00:00+00:00")})
    assert len(k8s.names(JOBS, cluster)) == 2


def test_dry_run_creates_nothing_and_logs_the_manifest_without_secrets(k8s, cluster, caplog, monkeypatch):
    # a stdlib logger, so caplog sees the task's lines (the task logger writes past it)
    task_log = logging.getLogger("test_k8s.operator")
    monkeypatch.setattr(KubernetesJobFromCronJobOperator, "log", property(lambda self: task_log))
    caplog.set_level(logging.INFO, logger="test_k8s.operator")
    ti = TaskInstance()
    assert op(dry_run="True").execute({"ti": ti}) == []
    assert k8s.requests("POST", f"/namespaces/{cluster}/jobs") == []
    assert k8s.names(JOBS, cluster) == []
    assert ti.xcoms[JOB_XCOM_KEY]["dry_run"] is True
    logged = caplog.text
    assert "Dry run: would create Job cron-batch-reindex-conversations-sunbit-" in logged
    assert '"cronjob.kubernetes.io/instantiate": "manual"' in logged and "2026-01-02T00:00:00+00:00" in logged
    assert "hunter2" not in logged and '"value": "***"' in logged


def test_dry_run_hides_a_sidecars_literal_of_an_override_name(k8s, namespace, caplog, monkeypatch):
    """The proxy's own REINDEX_START_TIME is a template literal, not our override: hidden (item 2)."""
    containers = [
        {"name": "reindex", "image": "reindex:1", "env": [{"name": "REINDEX_START_TIME", "value": "old"}]},
        {"name": "proxy", "image": "proxy:1", "env": [
            {"name": "REINDEX_START_TIME", "value": "proxy-literal-s3cret"},
            {"name": "PROXY_KEY", "value": "proxy-key-s3cret"},
        ]},
    ]  # fmt: skip
    k8s.put(CRONJOBS, namespace, cronjob(CRONJOB, namespace, containers=containers))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", k8s.connection(namespace))
    task_log = logging.getLogger("test_k8s.operator")
    monkeypatch.setattr(KubernetesJobFromCronJobOperator, "log", property(lambda self: task_log))
    caplog.set_level(logging.INFO, logger="test_k8s.operator")
    assert op(dry_run="True").execute({"ti": TaskInstance()}) == []
    logged = caplog.text
    assert "s3cret" not in logged
    assert f'"value": "{ENV["REINDEX_START_TIME"]}"' in logged  # the override, where it applies


def test_logs_of_restarted_pods_several_pods_and_lines_still_being_written(k8s, cluster):
    reads = {"n": 0}

    def growing(name):
        def text():
            reads["n"] += 1
            line = LINE.format(c="sunbit", j=name, w="wf-current")
            return "boot\n" + (line[:30] if reads["n"] < 3 else line)  # the line lands on the third read

        return text

    def plan(job):
        name = job["metadata"]["name"]
        restarted = pod_for(job, "a", phase="Running", restarts=1, namespace=cluster)
        other = pod_for(job, "b", phase="Succeeded", namespace=cluster)
        a, b = restarted["metadata"]["name"], other["metadata"]["name"]
        k8s.logs[(cluster, a, "reindex", True)] = LINE.format(c="sunbit", j=name, w="wf-before-restart")
        k8s.logs[(cluster, a, "reindex", False)] = growing(name)
        k8s.logs[(cluster, b, "reindex", False)] = LINE.format(c="sunbit", j=name, w="wf-other-pod") * 2
        return [restarted, other]

    k8s.pod_plan = plan  # the Job stays running: its pods are read until each logged its line
    found = op().execute({"ti": TaskInstance()})
    assert [f["workflow_id"] for f in found] == ["wf-before-restart", "wf-current", "wf-other-pod"]
    assert reads["n"] == 3


def test_no_matching_line_names_the_pod_and_the_pattern(k8s, cluster):
    one_pod_logging(k8s, cluster)  # the pod logs only "boot"
    with pytest.raises(AirflowFailException) as err:
        op().execute({"ti": TaskInstance()})
    message = str(err.value)
    assert "No line of the logs of Job cron-batch-reindex-conversations-sunbit-" in message
    assert (
        "matches the log pattern 'Created reindex conversations job: name=%s, execution_id=%s, cluster=%s'"
        in message
    )
    assert "-a (1 lines)" in message and "the Job has finished" in message


def test_clear_errors_for_cronjob_container_connection_and_rbac(k8s, cluster, monkeypatch):
    with pytest.raises(AirflowFailException, match=f"CronJob nope not found in namespace {cluster} on cluster "
                       "us-east-1-prod \\(connection 'kubernetes_default'\\)"):  # fmt: skip
        op(cronjob_name="nope").execute({"ti": TaskInstance()})
    with pytest.raises(AirflowFailException, match=r"Container 'worker' is not in the job template of CronJob "
                       rf"{CRONJOB}: its containers are \['reindex', 'proxy'\]"):  # fmt: skip
        op(container="worker").execute({"ti": TaskInstance()})
    with pytest.raises(AirflowFailException, match="Cluster eu-prod has no Airflow connection 'kubernetes_eu_prod' "
                       r"\(type kubernetes\).*AIRFLOW_CONN_KUBERNETES_EU_PROD"):  # fmt: skip
        op(kubernetes_conn_id="kubernetes_eu_prod", cluster="eu-prod").execute({"ti": TaskInstance()})
    assert k8s.names(JOBS, cluster) == []

    denied = (f'cronjobs.batch "{CRONJOB}" is forbidden: User "system:serviceaccount:airflow:backfill" '
              f'cannot get resource "cronjobs" in API group "batch" in the namespace "{cluster}"')  # fmt: skip
    k8s.forbid("GET", f"/namespaces/{cluster}/cronjobs/", denied)
    with pytest.raises(AirflowFailException) as err:
        op().execute({"ti": TaskInstance()})
    message = str(err.value)
    assert (
        f"Kubernetes refused to get cronjobs/{CRONJOB} in namespace {cluster} on cluster us-east-1-prod"
        in message
    )
    assert "(403 Forbidden, RBAC)" in message and denied in message
    assert "get cronjobs; create, get and delete jobs; list pods; get pods/log" in message
    assert "docs/kubernetes.md#rbac" in message


def test_a_403_on_pod_logs_gives_the_rbac_message(k8s, cluster):
    one_pod_logging(k8s, cluster, "wf-1")
    k8s.forbid("GET", f"/namespaces/{cluster}/pods/", "pods is forbidden: cannot get resource pods/log")
    with pytest.raises(AirflowFailException, match=r"Kubernetes refused to get pods/log/cron-batch-reindex-"
                       rf"conversations-sunbit-\w+-a in namespace {cluster} .*\(403 Forbidden, RBAC\)"):  # fmt: skip
        op().execute({"ti": TaskInstance()})


def test_on_kill_deletes_the_job_and_its_pods(k8s, cluster):
    k8s.pod_plan = lambda job: [pod_for(job, "a", phase="Running", namespace=cluster)]
    operator = op(wait_for_completion=True, deferrable=False, poll_interval=0.05)
    ti = TaskInstance()

    async def kill_when_running():
        # The sync wait blocks this thread; kill from another, as Airflow's supervisor would.
        for _ in range(200):
            if k8s.names(JOBS, cluster):
                break
            await asyncio.sleep(0.02)
        operator.on_kill()
        k8s.finish_job(cluster, k8s.names(JOBS, cluster)[0], "Failed") if k8s.names(JOBS, cluster) else None

    import threading

    killer = threading.Thread(target=lambda: asyncio.run(kill_when_running()))
    killer.start()
    with pytest.raises(Exception, match="was deleted while the task waited"):
        operator.execute({"ti": ti})
    killer.join()
    name = ti.xcoms[JOB_XCOM_KEY]["job_name"]
    assert k8s.get(JOBS, cluster, name) is None
    assert k8s.names(PODS, cluster) == []
    (delete,) = k8s.requests("DELETE", f"/namespaces/{cluster}/jobs/{name}")
    assert k8s.requests("DELETE", f"/namespaces/{cluster}/pods/{name}-a")


def test_deferrable_wait_then_logs(k8s, cluster):
    one_pod_logging(k8s, cluster, "wf-1")
    k8s.job_condition = None  # the Job runs until the test finishes it
    operator = op(wait_for_completion=True, deferrable=True)
    ti = TaskInstance()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert (
        isinstance(trigger, KubernetesJobCompleteTrigger) and deferred.value.method_name == "execute_complete"
    )
    name = ti.xcoms[JOB_XCOM_KEY]["job_name"]
    assert trigger.serialize() == (
        "airflow_backfill_provider.triggers.kubernetes.KubernetesJobCompleteTrigger",
        {"job_name": name, "namespace": cluster, "kubernetes_conn_id": "kubernetes_default",
         "cluster": "us-east-1-prod", "poll_interval": 0.05, "delete_on_kill": True},
    )  # fmt: skip
    clone = KubernetesJobCompleteTrigger(**trigger.serialize()[1])

    async def run_until_done():
        events = clone.run()
        task = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.3)
        assert not task.done()  # still running: no event yet
        await asyncio.to_thread(k8s.finish_job, cluster, name)
        return (await asyncio.wait_for(task, 10)).payload

    event = asyncio.run(run_until_done())
    assert event == {"job_name": name, "namespace": cluster, "status": "success", "job_state": "Complete",
                     "message": "Job Complete"}  # fmt: skip
    assert operator.execute_complete({"ti": ti}, event)[0]["workflow_id"] == "wf-1"

    with pytest.raises(
        AirflowFailException, match=f"Job {name} in namespace {cluster} of cluster us-east-1-prod failed"
    ):
        operator.execute_complete({"ti": ti}, {**event, "job_state": "Failed"})


def test_trigger_turns_errors_into_events(k8s, cluster):
    trigger = KubernetesJobCompleteTrigger(
        job_name="absent",
        namespace=cluster,
        kubernetes_conn_id="kubernetes_default",
        cluster="c",
        poll_interval=0.05,
    )

    async def first():
        return (await trigger.run().__anext__()).payload

    event = asyncio.run(first())
    assert event["status"] == "error" and event["job_state"] is None
    assert "failed to get jobs/absent in namespace" in event["message"] and "(status 404)" in event["message"]


def test_killing_the_deferred_task_deletes_the_job(k8s, cluster):
    one_pod_logging(k8s, cluster, "wf-1")
    k8s.job_condition = None
    ti = TaskInstance()
    with pytest.raises(TaskDeferred) as deferred:
        op(wait_for_completion=True, deferrable=True).execute({"ti": ti})
    name = ti.xcoms[JOB_XCOM_KEY]["job_name"]
    assert k8s.get(JOBS, cluster, name) is not None
    asyncio.run(deferred.value.trigger.on_kill())
    assert k8s.get(JOBS, cluster, name) is None
