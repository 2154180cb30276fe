"""`airflow backfill create --dag-id k8s_job_backfill` for real: the scheduler, the execution API and
the triggerer (the workflow sensors defer), kmock's emulator as two clusters, a real Temporal.

Each Job the DAG creates makes the stand-in Job controller start the workflows its pod logs, in the
cluster's Temporal namespace, for the Job's interval and customer. The workflows are held open until
every `wait_workflows` sensor of their run has deferred, so each run's wait goes through the
triggerer. One customer's workflow fails on the second day: that run fails naming it, the others
succeed. Three daily intervals, two runs at a time; ``K8S_BACKFILL_DAYS=30`` runs a month.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from airflow_backfill_provider.testing.kubernetes import CRONJOBS, JOBS, cronjob, pod_for
from airflow_backfill_provider.testing.services import temporal_dev_server
from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args
from airflow_backfill_provider.testing.temporal_worker import WorkerThread

DAG_FILE = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "k8s_job_backfill.py"
DAG_ID = "k8s_job_backfill"
DAYS = int(os.environ.get("K8S_BACKFILL_DAYS", "3"))
FIRST_DAY = date(2026, 1, 1)
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)
FAILING = ("voice-prod", "beta", FIRST_DAY + timedelta(days=1))  # this customer's workflow fails that day
MAX_ACTIVE_RUNS = 2
TASK_QUEUE = "reindex_conversations"
CRONJOB = "cron-batch-reindex-conversations"
UID = uuid.uuid4().hex[:6]
# cluster -> (Kubernetes namespace, Temporal namespace, {customer: workflows its Job's pod logs})
CLUSTERS = {
    "us-east-1-prod": (f"bf-us-{UID}", "ingestion", {"sunbit": 2, "acme": 1}),
    "voice-prod": (f"bf-voice-{UID}", "voice", {"acme": 1, "beta": 1}),
}
CONFIG = {
    "defaults": {"cronjob": CRONJOB, "container": "reindex"},
    "clusters": [
        {"name": "us-east-1-prod", "namespace": CLUSTERS["us-east-1-prod"][0],
         "customers": [{"id": "sunbit"}, {"id": "acme"}]},
        {"name": "voice-prod", "namespace": CLUSTERS["voice-prod"][0], "temporal_namespace": "voice",
         "customers": [{"id": "acme"}, {"id": "beta"}]},
    ],
}  # fmt: skip
LINE = "Created reindex conversations job: name=customers/{c}/profiles/default/jobs/{j}, execution_id={w}, cluster={k}\n"


def wid(cluster: str, customer: str, day: date, i: int) -> str:
    return f"reindex-{customer}-{cluster}-{day.isoformat()}-{UID}-{i}"


def iso_day(day: date, plus: int = 0) -> str:
    return datetime.combine(day + timedelta(days=plus), datetime.min.time(), timezone.utc).isoformat()


@workflow.defn(name="HeldReindexConversations")
class HeldReindexConversations:
    """Stays open until signalled ``release``; then completes, or with ``{"fail": true}`` fails."""

    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self, params: dict) -> dict:
        await workflow.wait_condition(lambda: self.released)
        if params.get("fail"):
            raise ApplicationError(f"reindex of {params['customer']} failed", non_retryable=True)
        return {"reindexed": params["customer"]}


class Workflows:
    """Starts and releases the held workflows from any thread (a client per namespace, own loop)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="temporal-client", daemon=True)
        self.clients: dict[str, object] = {}
        self.started: dict[date, list[tuple[str, str]]] = {}  # day -> [(Temporal namespace, id)]
        self.lock = threading.Lock()

    def __enter__(self) -> Workflows:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _client(self, namespace: str):
        from temporalio.client import Client

        if namespace not in self.clients:
            self.clients[namespace] = await Client.connect(self.address, namespace=namespace)
        return self.clients[namespace]

    def start(self, namespace: str, workflow_id: str, day: date, params: dict) -> None:
        async def go() -> None:
            client = await self._client(namespace)
            await client.start_workflow(
                "HeldReindexConversations", params, id=workflow_id, task_queue=TASK_QUEUE
            )

        self._call(go())
        with self.lock:
            self.started.setdefault(day, []).append((namespace, workflow_id))

    def release(self, day: date) -> int:
        with self.lock:
            started = list(self.started.get(day, ()))

        async def go() -> None:
            for namespace, workflow_id in started:
                client = await self._client(namespace)
                await client.get_workflow_handle(workflow_id).signal("release")

        self._call(go())
        return len(started)


class ReleaseWhenDeferred(threading.Thread):
    """Releases a day's workflows once every ``wait_workflows`` sensor of its run has deferred (found
    them open and handed the wait to the triggerer) and the scheduler has taken in that it did.

    Airflow 3.3.2 fails a deferred task whose trigger fires before the scheduler has processed the
    executor's success event of the deferring attempt, once the resumed attempt is queued ("state
    mismatch": the race of apache/airflow#66374, guarded there only while the task is still
    scheduled; #71580 and #72716 report other states). That event came up to 5 s after the
    deferral here, so the workflows are held until the scheduler's log shows it for every sensor
    of the run: in a real backfill the workflows run for much longer than that.
    """

    FINISHED = re.compile(
        rf"TaskInstance Finished: dag_id={DAG_ID}, task_id=wait_workflows, run_id=(\S+), map_index=(\d+), "
        r".*?, state=deferred, .*?executor_state=success"
    )

    def __init__(self, stack: AirflowStack, workflows: Workflows, sensors_per_run: int) -> None:
        super().__init__(name="release-when-deferred", daemon=True)
        self.stack, self.workflows, self.sensors_per_run = stack, workflows, sensors_per_run
        self.released: dict[date, int] = {}
        self.errors: list[BaseException] = []
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(0.5):
                deferred: dict[str, set[int]] = {}
                log = self.stack.home / "scheduler.log"
                for run_id, map_index in self.FINISHED.findall(log.read_text() if log.exists() else ""):
                    deferred.setdefault(run_id, set()).add(int(map_index))
                days = dict(
                    self.stack.query(
                        "SELECT run_id, data_interval_start FROM dag_run WHERE dag_id = :d AND run_type = 'backfill'",
                        d=DAG_ID,
                    )
                )
                for run_id, indexes in deferred.items():
                    day = date.fromisoformat(str(days[run_id])[:10])
                    if len(indexes) == self.sensors_per_run and day not in self.released:
                        self.released[day] = self.workflows.release(day)
        except BaseException as err:  # surfaced by the test
            self.errors.append(err)


def finished_runs(stack: AirflowStack, timeout: float) -> list[dict]:
    """The backfill's runs once all ``DAYS`` are finished. Unlike :meth:`AirflowStack.wait_for_runs`
    this does not also wait for the backfill's completion mark, which the scheduler sets on a 30 s
    timer and would take up to a third of this test's time."""
    columns = ("run_id", "state", "data_interval_start", "data_interval_end", "start_date", "end_date")
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        runs = [
            dict(zip(columns, row, strict=True))
            for row in stack.query(
                f"SELECT {', '.join(columns)} FROM dag_run WHERE dag_id = :d AND run_type = 'backfill' "
                "ORDER BY data_interval_start",
                d=DAG_ID,
            )
        ]
        if len(runs) >= DAYS and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            states = Counter(r["state"] for r in runs)
            raise TimeoutError(
                f"backfill runs after {timeout:.0f}s: {dict(states)}; see the logs in {stack.home}"
            )
        time.sleep(1)


@pytest.fixture
def temporal():
    with temporal_dev_server(("default", "ingestion", "voice")) as address:
        with WorkerThread(
            address,
            namespaces=("ingestion", "voice"),
            task_queue=TASK_QUEUE,
            workflows=[HeldReindexConversations],
        ):
            with Workflows(address) as workflows:
                yield address, workflows


@pytest.fixture
def clusters(k8s, temporal):
    """Each cluster's CronJob; a stand-in Job controller whose pod logs the workflows it started."""
    _, workflows = temporal
    by_namespace = {
        ns: (cluster, temporal_ns, customers) for cluster, (ns, temporal_ns, customers) in CLUSTERS.items()
    }
    containers = [
        {"name": "reindex", "image": "reindex:1", "env": [{"name": "REINDEX_START_TIME", "value": "x"}]}
    ]
    for namespace in by_namespace:
        k8s.put(CRONJOBS, namespace, cronjob(CRONJOB, namespace, containers=containers))

    def plan(job):
        namespace = job["metadata"]["namespace"]
        cluster, temporal_ns, customers = by_namespace[namespace]
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        customer = env["RUN_ONLY_FOR_CUSTOMER_IDS"]
        day = date.fromisoformat(env["REINDEX_START_TIME"][:10])
        ids = [wid(cluster, customer, day, i) for i in range(customers[customer])]
        for workflow_id in ids:
            fail = (cluster, customer, day) == FAILING
            workflows.start(temporal_ns, workflow_id, day, {"customer": customer, "fail": fail})
        pod = pod_for(job, "x1", namespace=namespace)
        k8s.logs[(namespace, pod["metadata"]["name"], "reindex", False)] = "starting\n" + "".join(
            LINE.format(c=customer, j=job["metadata"]["name"], w=w, k=cluster) for w in ids
        )
        return [pod]

    k8s.pod_plan = plan
    k8s.job_condition = "Complete"
    yield
    k8s.pod_plan = None
    k8s.job_condition = None


def test_backfill_create_over_daily_intervals(k8s, temporal, clusters, tmp_path):
    address, workflows = temporal
    host, port = address.rsplit(":", 1)
    tracking = tmp_path / "tracking"
    connections = {}
    for cluster, (namespace, temporal_ns, _) in CLUSTERS.items():
        conn = cluster.replace("-", "_").upper()
        connections[f"AIRFLOW_CONN_KUBERNETES_{conn}"] = k8s.connection(namespace)
        connections[f"AIRFLOW_CONN_TEMPORAL_{conn}"] = json.dumps(
            {"conn_type": "temporal", "host": host, "port": int(port), "extra": {"namespace": temporal_ns}}
        )
    # The DAG file alone: the other DAGs of the folder would be scheduled too, and take task slots.
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(DAG_FILE, dags)
    stack = AirflowStack(
        home=tmp_path / "airflow",
        dags_folder=dags,
        parallelism=4,
        triggerer=True,
        extra_env={
            **connections,
            "K8S_JOB_BACKFILL_TRACKING_PATH": f"file://{tracking}",
            "K8S_JOB_BACKFILL_POLL_INTERVAL": "0.5",
            "K8S_JOB_BACKFILL_LOG_TIMEOUT": "20",
            "K8S_JOB_BACKFILL_RETRIES": "0",
            # The scheduler's "TaskInstance Finished" lines, which ReleaseWhenDeferred waits for.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        },
    )
    stack.prepare(DAG_ID)
    stack.cli(
        *backfill_args(DAG_ID, FIRST_DAY, LAST_DAY, max_active_runs=MAX_ACTIVE_RUNS, conf={"config": CONFIG})
    )
    releaser = ReleaseWhenDeferred(stack, workflows, sensors_per_run=len(CLUSTERS))
    with stack.running():
        releaser.start()
        try:
            runs = finished_runs(stack, timeout=120 + 30 * DAYS)  # generous: CI machines are slower and noisy
        finally:
            releaser.done.set()
            releaser.join(10)
    assert releaser.errors == []
    mismatches = stack.query("SELECT extra FROM log WHERE event = 'state mismatch'")
    assert mismatches == [], "a resumed sensor was failed by Airflow's defer race (see ReleaseWhenDeferred)"
    days = [FIRST_DAY + timedelta(days=i) for i in range(DAYS)]
    failing_id = wid(FAILING[0], FAILING[1], FAILING[2], 0)

    # Every run of the backfill ends, the failing customer's day failed, every other day succeeded.
    states = {date.fromisoformat(str(r["data_interval_start"])[:10]): r["state"] for r in runs}
    assert states == {d: "failed" if d == FAILING[2] else "success" for d in days}
    assert [str(r["data_interval_end"])[:10] for r in runs] == [
        (d + timedelta(days=1)).isoformat() for d in days
    ]
    # Every run's sensors deferred with their workflows open, and the triggerer resumed them.
    jobs_per_day = sum(n for _, _, customers in CLUSTERS.values() for n in customers.values())
    assert releaser.released == dict.fromkeys(days, jobs_per_day)
    # At most MAX_ACTIVE_RUNS at once, and that many did run together.
    spans = [(r["start_date"], r["end_date"]) for r in runs]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap == min(MAX_ACTIVE_RUNS, DAYS)

    tis = stack.query(
        "SELECT substr(r.data_interval_start, 1, 10), t.task_id, t.map_index, t.state FROM task_instance t "
        "JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id WHERE t.dag_id = :d",
        d=DAG_ID,
    )
    by_day: dict[date, dict] = {}
    for day, task_id, map_index, state in tis:
        by_day.setdefault(date.fromisoformat(day), {})[(task_id, map_index)] = state
    for day in days:
        bad = day == FAILING[2]
        assert by_day[day] == {
            ("resolve", -1): "success",
            **{("create_job", i): "success" for i in range(4)},
            ("collect", -1): "success",
            ("wait_workflows", 0): "success",  # us-east-1-prod
            ("wait_workflows", 1): "failed" if bad else "success",  # voice-prod
            ("report", -1): "failed" if bad else "success",
        }, day

    # One Job per (cluster, customer, interval), with that interval and customer in its env.
    made = Counter()
    for cluster, (namespace, _, _) in CLUSTERS.items():
        for name in k8s.names(JOBS, namespace):
            job = k8s.get(JOBS, namespace, name)
            env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
            made[
                (
                    cluster,
                    env["RUN_ONLY_FOR_CUSTOMER_IDS"],
                    env["REINDEX_START_TIME"],
                    env["REINDEX_END_TIME"],
                )
            ] += 1
            assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    expected_jobs = {
        (cluster, customer, iso_day(d), iso_day(d, 1)): 1
        for d in days
        for cluster, (_, _, customers) in CLUSTERS.items()
        for customer in customers
    }
    assert made == expected_jobs

    # One tracking file per run, with every workflow's final status.
    files = sorted(tracking.rglob("backfill_tracking.json"))
    assert len(files) == DAYS
    docs = {
        date.fromisoformat(doc["time_range"]["start"][:10]): doc
        for doc in (json.loads(f.read_text()) for f in files)
    }
    run_ids = {date.fromisoformat(str(r["data_interval_start"])[:10]): r["run_id"] for r in runs}
    for day in days:
        doc = docs[day]
        assert doc["run_id"] == run_ids[day] and doc["dry_run"] is False
        assert doc["time_range"] == {"start": iso_day(day), "end": iso_day(day, 1)}
        got = {
            (j["cluster"], j["customer"]): [(w["workflow_id"], w["status"]) for w in j["workflows"]]
            for j in doc["jobs"]
        }
        assert got == {
            (cluster, customer): [
                (
                    wid(cluster, customer, day, i),
                    "Failed" if (cluster, customer, day) == FAILING else "Completed",
                )
                for i in range(n)
            ]
            for cluster, (_, _, customers) in CLUSTERS.items()
            for customer, n in customers.items()
        }
        assert doc["summary"]["failed"] == ([failing_id] if day == FAILING[2] else [])

    # The failed run's report names the failed workflow.
    (log,) = (stack.home / "logs" / f"dag_id={DAG_ID}").glob(
        f"run_id={run_ids[FAILING[2]]}/task_id=report/**/*.log"
    )
    assert f"1 workflow(s) did not complete: {failing_id} (Failed)" in log.read_text()
