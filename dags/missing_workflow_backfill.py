"""
Find Temporal workflow executions that are missing or failed, interval by interval, and backfill them.

`settle` ──► `resolve_spec` ──► `find_gaps` ──► `backfill` ──► `summary`

`settle` waits until the interval's own workflows had time to start. `find_gaps` classifies each key
of the spec (completed, running, running too long, failed, timed out, terminated, canceled, missing);
`backfill` starts one replacement per gap under a deterministic id and records it in ClickHouse
(`dry_run` only reports); `summary` logs the counts and fails the run when a step failed.

The spec comes from the `spec` Param, the `spec_file` Param's file, an Airflow Variable, or a file.
Deployment settings (environment variables), the spec's fields and Params:
[docs/missing-workflow-backfill.md](docs/missing-workflow-backfill.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task

from airflow_backfill_provider.operators.workflow_backfill import (
    TemporalBackfillGapsOperator,
    TemporalFindWorkflowGapsOperator,
)
from airflow_backfill_provider.settings import MissingWorkflowBackfillSettings
from airflow_backfill_provider.tasks import missing_workflow_backfill as steps

SETTINGS = MissingWorkflowBackfillSettings.from_env()


@dag(
    dag_id="missing_workflow_backfill",
    description="Find missing or failed Temporal workflow executions per interval and backfill them once.",
    schedule=CronDataIntervalTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=SETTINGS.start_date,
    catchup=SETTINGS.catchup,
    max_active_runs=SETTINGS.max_active_runs,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    params={
        "spec": Param(
            None,
            type=["null", "object", "array"],
            description='Workflow spec (object, list, or {"workflows": [...]}); empty: spec_file, Variable, file.',
        ),
        "spec_file": Param(None, type=["null", "string"], description="Path of a JSON spec file."),
        "dry_run": Param(
            False, type="boolean", description="Classify and report only: start and record nothing."
        ),
        "max_starts": Param(
            100,
            type="integer",
            minimum=0,
            description="Refuse to start more replacements than this in one run.",
        ),
        "interval_start": Param(
            None, type=["null", "string"], description="Check this interval instead of the run's (ISO 8601)."
        ),
        "interval_end": Param(None, type=["null", "string"], description="End of that interval (exclusive)."),
    },
    tags=["backfill", "temporal", "clickhouse"],
    doc_md=__doc__,
)
def missing_workflow_backfill():
    @task
    def resolve_spec(params=None):
        """The raw spec (kept in XCom for the record); validated by find_gaps."""
        return steps.resolve_spec(params, spec_variable=SETTINGS.spec_variable, spec_file=SETTINGS.spec_file)

    spec = resolve_spec()
    if SETTINGS.settle is not None:
        # Past intervals (backfills, catchup, manual runs of old dates) pass at once.
        TimeDeltaSensor(task_id="settle", delta=SETTINGS.settle, mode="reschedule", poke_interval=300) >> spec
    find = TemporalFindWorkflowGapsOperator(
        task_id="find_gaps",
        spec=spec,
        interval_start="{{ params.interval_start or data_interval_start.isoformat() }}",
        interval_end="{{ params.interval_end or data_interval_end.isoformat() }}",
        temporal_conn_id=SETTINGS.temporal_conn_id,
    )
    backfill = TemporalBackfillGapsOperator(
        task_id="backfill",
        gaps=find.output,
        dry_run="{{ params.dry_run }}",
        max_starts="{{ params.max_starts }}",
        table=SETTINGS.table,
        temporal_conn_id=SETTINGS.temporal_conn_id,
        clickhouse_conn_id=SETTINGS.clickhouse_conn_id,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(found, backfilled) -> dict:
        """Counts per class, the ids started; fails the run if any earlier step failed."""
        return steps.summary(found, backfilled)

    summary(find.output, backfill.output)


missing_workflow_backfill()
