"""The k8s_job_backfill DAG under dag.test(): two clusters on kmock's emulator, a real Temporal dev server."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.testing.dag_runs import run_note, task_states, xcom
from airflow_backfill_provider.testing.kubernetes import CRONJOBS, JOBS, cronjob, pod_for
from airflow_backfill_provider.testing.services import temporal_dev_server
from airflow_backfill_provider.testing.temporal_worker import ReindexConversations, WorkerThread

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "k8s_job_backfill.py"
# A manual dag.test(logical_date=X) run covers [X - 1 day, X).
RUN_DATE = pendulum.datetime(2026, 1, 2, tz="UTC")
TASK_QUEUE = "reindex_conversations"
CRONJOB = "cron-batch-reindex-conversations"
UID = uuid.uuid4().hex[:6]
# cluster -> (Kubernetes namespace, Temporal namespace, {customer: [mode of each workflow its Job logs]})
CLUSTERS = {
    "us-east-1-prod": ("cron-us", "ingestion", {"sunbit": ["ok", "slow"], "acme": ["ok", "fail"]}),
    "voice-prod": ("cron-voice", "voice", {"acme": ["ok"], "beta": ["fail"]}),
}
CONFIG = {
    "defaults": {"cronjob": CRONJOB, "container": "reindex"},
    "clusters": [
        {"name": "us-east-1-prod", "namespace": "cron-us", "customers": [{"id": "sunbit"}, {"id": "acme"}]},
        {"name": "voice-prod", "namespace": "cron-voice", "temporal_namespace": "voice",
         "customers": [{"id": "acme", "profile": "voice"}, {"id": "beta"}]},
    ],
}  # fmt: skip


def wid(cluster: str, customer: str, i: int) -> str:
    return f"reindexconversations-{customer}-{cluster}-{UID}-{i}"


LINE = "Created reindex conversations job: name=customers/{c}/profiles/default/jobs/{j}, execution_id={w}, cluster={k}\n"


@pytest.fixture(scope="module")
def temporal():
    with temporal_dev_server(("default", "ingestion", "voice")) as address:
        with WorkerThread(
            address,
            namespaces=("ingestion", "voice"),
            task_queue=TASK_QUEUE,
            workflows=[ReindexConversations],
        ):
            yield address


@pytest.fixture(scope="module")
def env(k8s, temporal, tmp_path_factory):
    """Connections per cluster, fast settings, and the DAG parsed with them."""
    tracking = tmp_path_factory.mktemp("tracking")
    host, port = temporal.rsplit(":", 1)
    mp = pytest.MonkeyPatch()
    for cluster, (namespace, temporal_ns, _) in CLUSTERS.items():
        conn = cluster.replace("-", "_").upper()
        mp.setenv(f"AIRFLOW_CONN_KUBERNETES_{conn}", k8s.connection(namespace))
        mp.setenv(
            f"AIRFLOW_CONN_TEMPORAL_{conn}",
            json.dumps(
                {
                    "conn_type": "temporal",
                    "host": host,
                    "port": int(port),
                    "extra": {"namespace": temporal_ns},
                }
            ),
        )
    mp.setenv("K8S_JOB_BACKFILL_TRACKING_PATH", f"file://{tracking}")
    mp.setenv("K8S_JOB_BACKFILL_POLL_INTERVAL", "0.2")
    mp.setenv("K8S_JOB_BACKFILL_LOG_TIMEOUT", "10")
    mp.setenv("K8S_JOB_BACKFILL_RETRY_DELAY", "0")
    yield tracking
    mp.undo()


@pytest.fixture(scope="module")
def dag(env, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["k8s_job_backfill"]


@pytest.fixture(scope="module")
def clusters(k8s, env):
    """Each cluster's CronJob; a stand-in Job controller whose pods log the workflows of CLUSTERS."""
    by_namespace = {ns: (cluster, customers) for cluster, (ns, _, customers) in CLUSTERS.items()}
    containers = [
        {"name": "reindex", "image": "reindex:1", "env": [{"name": "REINDEX_START_TIME", "value": "x"}]}
    ]
    for namespace in by_namespace:
        k8s.put(CRONJOBS, namespace, cronjob(CRONJOB, namespace, containers=containers))

    def plan(job):
        namespace = job["metadata"]["namespace"]
        cluster, customers = by_namespace[namespace]
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        customer = env["RUN_ONLY_FOR_CUSTOMER_IDS"]
        pod = pod_for(job, "x1", namespace=namespace)
        k8s.logs[(namespace, pod["metadata"]["name"], "reindex", False)] = "starting\n" + "".join(
            LINE.format(c=customer, j=job["metadata"]["name"], w=wid(cluster, customer, i), k=cluster)
            for i in range(len(customers[customer]))
        )
        return [pod]

    k8s.pod_plan = plan
    k8s.job_condition = "Complete"
    yield
    k8s.pod_plan = None


@pytest.fixture(scope="module")
def workflows(temporal, env):
    """The workflows the pods log, started as the real Jobs would: some complete, some fail, one slowly."""
    for cluster, (_, temporal_ns, customers) in CLUSTERS.items():
        hook = TemporalHook(f"temporal_{cluster.replace('-', '_')}", namespace=temporal_ns)
        for customer, modes in customers.items():
            for i, mode in enumerate(modes):
                params = {"customer": customer, "fail": mode == "fail", "seconds": 1 if mode == "slow" else 0}
                hook.start_workflow(
                    "ReindexConversations",
                    workflow_id=wid(cluster, customer, i),
                    task_queue=TASK_QUEUE,
                    args=[params],
                )


def test_dag_shape(dag):
    from airflow.sdk import CronDataIntervalTimetable

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert set(dag.task_dict) == {"resolve", "create_job", "collect", "wait_workflows", "report"}
    assert dag.params["dry_run"] is True and dag.catchup is False and dag.start_date is None
    assert dag.get_task("wait_workflows").partial_kwargs["deferrable"] is True


def test_jobs_per_cluster_and_customer_tracked_to_completion(dag, k8s, clusters, workflows, env, capfd):
    dr = dag.test(logical_date=RUN_DATE, run_conf={"config": CONFIG, "dry_run": False})
    out = capfd.readouterr()
    states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
    assert states == {
        ("resolve", -1): "success",
        **{("create_job", i): "success" for i in range(4)},
        ("collect", -1): "success",
        ("wait_workflows", 0): "failed",  # us-east-1-prod: acme's second workflow failed
        ("wait_workflows", 1): "failed",  # voice-prod: beta's failed
        ("report", -1): "failed",
    }
    assert (dr.data_interval_start, dr.data_interval_end) == (RUN_DATE - timedelta(days=1), RUN_DATE)

    # One Job per (cluster, customer), with the interval and the customer in its env.
    for namespace, _, customers in CLUSTERS.values():
        names = k8s.names(JOBS, namespace)
        assert len(names) == len(customers)
        seen = set()
        for name in names:
            job_env = {
                e["name"]: e["value"]
                for e in k8s.get(JOBS, namespace, name)["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            assert job_env["REINDEX_START_TIME"] == "2026-01-01T00:00:00+00:00"
            assert job_env["REINDEX_END_TIME"] == "2026-01-02T00:00:00+00:00"
            seen.add(job_env["RUN_ONLY_FOR_CUSTOMER_IDS"])
        assert seen == set(customers)

    # The tracking file, with every workflow's final status.
    (path,) = env.rglob("backfill_tracking.json")
    doc = json.loads(path.read_text())
    assert doc["dag_id"] == "k8s_job_backfill" and doc["run_id"] == dr.run_id and doc["dry_run"] is False
    assert doc["time_range"] == {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"}
    got = {
        (j["cluster"], j["customer"]): [(w["workflow_id"], w["status"]) for w in j["workflows"]]
        for j in doc["jobs"]
    }
    expected = {
        (cluster, customer): [
            (wid(cluster, customer, i), "Failed" if m == "fail" else "Completed") for i, m in enumerate(modes)
        ]
        for cluster, (_, _, customers) in CLUSTERS.items()
        for customer, modes in customers.items()
    }
    assert got == expected
    voice_acme = next(j for j in doc["jobs"] if (j["cluster"], j["customer"]) == ("voice-prod", "acme"))
    assert voice_acme["profile"] == "voice" and voice_acme["namespace"] == "cron-voice"
    assert voice_acme["job_name"] in k8s.names(JOBS, "cron-voice") and voice_acme["created"] is True
    summary = doc["summary"]
    assert summary["counts"] == {"Completed": 4, "Failed": 2}
    assert sorted(summary["failed"]) == sorted(
        [wid("us-east-1-prod", "acme", 1), wid("voice-prod", "beta", 0)]
    )
    us = summary["clusters"]["us-east-1-prod"]
    assert us["counts"] == {"Completed": 3, "Failed": 1}
    assert us["customers"]["sunbit"]["counts"] == {"Completed": 2} and us["customers"]["acme"]["failed"] == [
        wid("us-east-1-prod", "acme", 1)
    ]
    assert summary["clusters"]["voice-prod"]["customers"]["beta"]["counts"] == {"Failed": 1}

    # The run failed naming the failed workflows.
    assert xcom(dr, "report") is None
    assert task_states(dr)["report"] == "failed"
    failed = f"{wid('us-east-1-prod', 'acme', 1)} (Failed), {wid('voice-prod', 'beta', 0)} (Failed)"
    assert f"2 workflow(s) did not complete: {failed}. Tracking file: file://{path}" in out.out + out.err


def test_dry_run_from_a_config_file_creates_nothing(dag, k8s, clusters, env, tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(CONFIG))
    before = {ns: k8s.names(JOBS, ns) for ns, _, _ in CLUSTERS.values()}
    dr = dag.test(
        logical_date=RUN_DATE + timedelta(days=5),
        # dry_run and config explicit: dag.test() keeps an earlier run's conf in the DAG's Params
        run_conf={
            "config": None,
            "config_file": str(config_file),
            "clusters": ["voice-prod"],
            "customers": ["beta"],
            "dry_run": True,
        },  # fmt: skip
    )
    states = {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}
    assert states[("create_job", 0)] == "success" and ("create_job", 1) not in states
    assert states[("report", -1)] == "success"
    assert {ns: k8s.names(JOBS, ns) for ns, _, _ in CLUSTERS.values()} == before
    report = xcom(dr, "report")
    doc = json.loads(Path(report["path"].removeprefix("file://")).read_text())
    assert doc["dry_run"] is True and doc["config_source"] == f"file {config_file}"
    assert [(j["cluster"], j["customer"], j["workflows"]) for j in doc["jobs"]] == [
        ("voice-prod", "beta", [])
    ]


def test_a_backfill_run_creates_its_intervals_jobs(dag, k8s, clusters, workflows, env):
    """What `airflow backfill create` makes: runs of type backfill over [X, X + 1 day), real unless
    their conf says dry_run."""
    from airflow_backfill_provider.testing.run_types import runs_of_type

    day = pendulum.datetime(2026, 1, 10, tz="UTC")
    before = set(k8s.names(JOBS, "cron-us"))
    with runs_of_type("backfill", (day, day + timedelta(days=1))):
        dr = dag.test(
            logical_date=day,
            run_conf={"config": CONFIG, "clusters": ["us-east-1-prod"], "customers": ["sunbit"]},
        )
    assert dr.run_type == "backfill" and task_states(dr)["report"] == "success"
    (new,) = set(k8s.names(JOBS, "cron-us")) - before
    env_of = {
        e["name"]: e["value"]
        for e in k8s.get(JOBS, "cron-us", new)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (env_of["REINDEX_START_TIME"], env_of["REINDEX_END_TIME"]) == (
        "2026-01-10T00:00:00+00:00", "2026-01-11T00:00:00+00:00",
    )  # fmt: skip
    assert xcom(dr, "report")["summary"]["counts"] == {"Completed": 2}


@pytest.mark.parametrize(
    ("conf", "variable", "why"),
    [
        ({"config": None, "config_file": "{trailing_comma}"}, None, "Cannot parse|Expecting"),
        ({"config": {"clusters": [{"name": "us-east-1-prod", "customers": [{"profile": "x"}]}]}}, None, "id"),
        ({"config": None}, "{not json", "Variable"),
        ({"config": {"clusters": [{"name": "nowhere", "customers": [{"id": "a"}]}]}}, None, "nowhere"),
    ],
    ids=[
        "config-file-trailing-comma",
        "customer-without-id",
        "malformed-variable",
        "cluster-without-connection",
    ],
)
def test_a_run_whose_config_cannot_be_used_fails(dag, env, tmp_path, monkeypatch, conf, variable, why):
    """resolve fails, and so does the run: collect and report fail too, naming resolve, instead of
    skipping (a run whose only leaf skipped is "success", issue 17, item 1). The run's note says why."""
    bad_file = tmp_path / "config.json"
    bad_file.write_text('{"clusters": [{"name": "us-east-1-prod", "customers": [{"id": "a"}]},]}')
    conf = {k: (str(bad_file) if v == "{trailing_comma}" else v) for k, v in conf.items()}
    if variable is not None:
        monkeypatch.setenv("AIRFLOW_VAR_K8S_JOB_BACKFILL_CONFIG", variable)
    dr = dag.test(logical_date=RUN_DATE, run_conf={"config_file": None, **conf, "dry_run": False})
    states = task_states(dr)
    assert dr.state == "failed", states
    assert states["resolve"] == "failed"
    assert states["collect"] == "failed" and states["report"] == "failed"
    note = run_note(dr)
    assert note.startswith("resolve failed: ") and re.search(why, note), note
