"""
Backfill with Kubernetes Jobs created from a CronJob, and track the Temporal workflows they start.

`resolve` ──► `create_job` (one per cluster × customer) ──► `collect` ──► `wait_workflows` (one per
cluster) ──► `report`

`resolve` reads the clusters and customers (the seed's config.json: from the `config` Param, the
`config_file` Param, an Airflow Variable or a file), applies the cluster and customer filters and
checks every cluster's connections. `create_job` creates a Job from the cluster's CronJob with the
run's data interval and the customer in its env (`REINDEX_START_TIME`, `REINDEX_END_TIME`,
`RUN_ONLY_FOR_CUSTOMER_IDS`) under a name a retry finds again, and reads the workflow ids its pods
log. `wait_workflows` waits for them, deferred, on the cluster's Temporal (namespace `ingestion`
by default). `report` writes the tracking file with every workflow's status and a summary per
cluster and customer, and fails the run naming the workflows that did not complete.

A run somebody triggers is a dry run unless its `dry_run` Param is turned off; scheduled runs and
backfills create Jobs (scheduled runs only once `K8S_JOB_BACKFILL_START_DATE` is set).
Config format, settings, connections and RBAC:
[docs/kubernetes.md](https://github.com/airflow-backfill-provider/airflow-backfill-provider/blob/main/docs/kubernetes.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

from airflow_backfill_provider.operators.kubernetes import JOB_XCOM_KEY, KubernetesJobFromCronJobOperator
from airflow_backfill_provider.params.k8s_job_backfill import params as k8s_job_backfill_params
from airflow_backfill_provider.sensors.temporal import TemporalWorkflowSensor
from airflow_backfill_provider.settings.k8s_job_backfill import K8sJobBackfillSettings
from airflow_backfill_provider.tasks import k8s_job_backfill as steps
from airflow_backfill_provider.tasks.runs import RunInfo

SETTINGS = K8sJobBackfillSettings.from_env()


@dag(
    dag_id="k8s_job_backfill",
    description="Kubernetes Jobs from a CronJob per cluster and customer; their Temporal workflows tracked.",
    schedule=CronDataIntervalTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=SETTINGS.start_date,
    catchup=SETTINGS.catchup,
    max_active_runs=SETTINGS.max_active_runs,
    default_args={
        **({"start_date": SETTINGS.start_date} if SETTINGS.start_date else {}),
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
    },
    params=k8s_job_backfill_params(),
    tags=["backfill", "kubernetes", "temporal"],
    doc_md=__doc__,
)
def k8s_job_backfill():
    @task
    def resolve(params=None, dag_run=None, ti=None) -> list[dict]:
        """The Jobs to create (operator kwargs); the whole plan, clusters' Temporal included, in XCom."""
        plan = steps.plan(params, settings=SETTINGS, run=RunInfo.of(dag_run, SETTINGS.schedule))
        ti.xcom_push(key=steps.PLAN_XCOM_KEY, value=plan)
        return plan["jobs"]

    planned = resolve()
    jobs = KubernetesJobFromCronJobOperator.partial(
        task_id="create_job",
        # Jobs of one run created (and their logs read) at once, so a long customer list does not
        # flood a cluster's API server or take every worker slot.
        max_active_tis_per_dagrun=SETTINGS.max_parallel_jobs,
        wait_for_completion=SETTINGS.wait_for_jobs,
        deferrable=True,
        poll_interval=SETTINGS.poll_interval.total_seconds(),
        log_pattern=SETTINGS.log_pattern,
        log_timeout=SETTINGS.log_timeout.total_seconds(),
    ).expand_kwargs(planned)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def collect(ti=None) -> list[dict]:
        """One sensor's kwargs per cluster with workflows (a failed create_job contributes none)."""
        plan = steps.pulled_plan(ti, then="collect")
        return steps.sensor_batches(plan, steps.pull_mapped(ti, "create_job", len(plan["jobs"])))

    batches = collect()
    jobs >> batches
    wait = TemporalWorkflowSensor.partial(
        task_id="wait_workflows",
        deferrable=True,
        poke_interval=SETTINGS.poll_interval.total_seconds(),
        timeout=SETTINGS.wait_timeout.total_seconds(),
    ).expand_kwargs(batches)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(ti=None, dag_run=None) -> dict:
        """Write the tracking file and the status summary; fail naming what did not complete."""
        plan = steps.pulled_plan(ti, then="report")
        n = len(plan["jobs"])
        tracked = steps.tracked_jobs(
            plan,
            steps.pull_mapped(ti, "create_job", n),
            steps.pull_mapped(ti, "create_job", n, key=JOB_XCOM_KEY),
        )
        return steps.report(
            plan,
            tracked,
            steps.latest_statuses(plan, tracked),
            path=steps.tracking_path(SETTINGS.tracking_path, dag_run.dag_id, dag_run.run_id),
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
        )

    wait >> report()


k8s_job_backfill()
