"""
Find Temporal workflow executions that are missing or failed, interval by interval, and backfill them.

`settle` ──► `resolve_spec` ──► `find_gaps` ──► `backfill` ──► `summary`

`settle` waits until the interval's own workflows had time to start. `find_gaps` classifies each key
of the spec (completed, running, running too long, failed, timed out, terminated, canceled, missing);
`backfill` starts one replacement per gap under a deterministic id and records it in ClickHouse
(`dry_run` only reports); `summary` logs the counts and fails the run when a step failed.

A run somebody triggers is a dry run unless its `dry_run` Param is turned off; scheduled runs and
backfills start replacements unless their own conf sets `dry_run`.

The spec comes from the `spec` Param, the `spec_file` Param's file, an Airflow Variable, or a file.
Deployment settings (environment variables), the spec's fields and Params:
[docs/missing-workflow-backfill.md](https://github.com/airflow-backfill-provider/airflow-backfill-provider/blob/main/docs/missing-workflow-backfill.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import CronDataIntervalTimetable, TriggerRule, dag, task

from airflow_backfill_provider.operators.workflow_backfill import (
    TemporalBackfillGapsOperator,
    TemporalFindWorkflowGapsOperator,
)
from airflow_backfill_provider.params.missing_workflow_backfill import (
    params as missing_workflow_backfill_params,
)
from airflow_backfill_provider.settings.missing_workflow_backfill import MissingWorkflowBackfillSettings
from airflow_backfill_provider.tasks import missing_workflow_backfill as steps
from airflow_backfill_provider.tasks.runs import RunInfo

SETTINGS = MissingWorkflowBackfillSettings.from_env()


@dag(
    dag_id="missing_workflow_backfill",
    description="Find missing or failed Temporal workflow executions per interval and backfill them once.",
    schedule=CronDataIntervalTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=SETTINGS.start_date,
    catchup=SETTINGS.catchup,
    max_active_runs=SETTINGS.max_active_runs,
    default_args={
        # Airflow runs no task of a manual run dated before the start date; with the start date in
        # default_args, `airflow dags trigger` refuses such a run instead, naming both dates.
        **({"start_date": SETTINGS.start_date} if SETTINGS.start_date else {}),
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    params=missing_workflow_backfill_params(),
    # For the backfill task's templated dry_run: the Param for triggered runs, the conf for others.
    user_defined_macros={"dry_run_of": steps.dry_run_of},
    tags=["backfill", "temporal", "clickhouse"],
    doc_md=__doc__,
)
def missing_workflow_backfill():
    @task
    def resolve_spec(params=None, dag_run=None):
        """The raw spec (kept in XCom for the record); validated by find_gaps."""
        return steps.resolve_spec(
            params,
            spec_variable=SETTINGS.spec_variable,
            spec_file=SETTINGS.spec_file,
            run=RunInfo.of(dag_run, SETTINGS.schedule),
        )

    spec = resolve_spec()
    if SETTINGS.settle is not None:
        # Past intervals (backfills, catchup, manual runs of old dates) pass at once.
        TimeDeltaSensor(task_id="settle", delta=SETTINGS.settle, mode="reschedule", poke_interval=300) >> spec
    find = TemporalFindWorkflowGapsOperator(
        task_id="find_gaps",
        spec=spec,
        # Empty: the run's data interval, or for a run without one the last complete interval.
        interval_start="{{ params.interval_start or '' }}",
        interval_end="{{ params.interval_end or '' }}",
        temporal_conn_id=SETTINGS.temporal_conn_id,
        # Off: an interval older than the namespace's retention is refused, dry run or not.
        allow_beyond_retention="{{ params.allow_beyond_retention }}",
    )
    backfill = TemporalBackfillGapsOperator(
        task_id="backfill",
        gaps=find.output,
        dry_run="{{ dry_run_of(dag_run, params) }}",
        max_starts="{{ params.max_starts }}",
        table=SETTINGS.table,
        temporal_conn_id=SETTINGS.temporal_conn_id,
        clickhouse_conn_id=SETTINGS.clickhouse_conn_id,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(found, backfilled, ti=None) -> dict:
        """Counts per class, the ids started; fails the run if an earlier step failed."""
        return steps.summary(found, backfilled, ti)

    summary(find.output, backfill.output)


missing_workflow_backfill()
