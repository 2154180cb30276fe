"""
Wonderware / AVEVA Historian → ClickHouse backfill, one DAG run per data interval.

`plan` (tags from TagRef × the window, in chunks) ──► `fetch_insert` (mapped: one task instance per
chunk) ──► `finalize`

Every run replaces exactly its own window in ClickHouse, so re-runs and retries never duplicate.
Drive it with `airflow backfill create --dag-id wonderware_backfill --from-date … --to-date …`
(or the Backfill dialog), with a manual trigger (the last complete interval, or the window of the
Trigger form's Params), or with catchup from `WONDERWARE_BACKFILL_START_DATE`.

Safe by default: until `WONDERWARE_BACKFILL_START_DATE` is set there is no catchup, and the runs
the scheduler makes load nothing (their `plan` task is skipped and says why).

Deployment settings (environment variables), Params and operations:
[docs/wonderware-backfill.md](https://github.com/airflow-backfill-provider/airflow-backfill-provider/blob/main/docs/wonderware-backfill.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, TriggerRule, dag, task

from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator
from airflow_backfill_provider.params.wonderware_backfill import params as wonderware_backfill_params
from airflow_backfill_provider.settings.wonderware_backfill import WonderwareBackfillSettings
from airflow_backfill_provider.tasks import wonderware_backfill as steps
from airflow_backfill_provider.tasks.runs import RunInfo

SETTINGS = WonderwareBackfillSettings.from_env()

# Downstream transformations schedule on this asset; finalize emits an event only when every chunk
# of the interval landed.
HISTORY_ASSET = Asset(name=SETTINGS.asset_name, uri=SETTINGS.asset_uri)


@dag(
    dag_id="wonderware_backfill",
    description="Backfill Wonderware History into ClickHouse, interval by interval, exactly once.",
    schedule=CronDataIntervalTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=SETTINGS.start_date,
    end_date=SETTINGS.end_date,
    catchup=SETTINGS.catchup,
    max_active_runs=SETTINGS.max_active_runs,
    default_args={
        # Airflow runs no task of a manual run dated before the start date; with the start date in
        # default_args, `airflow dags trigger` refuses such a run instead, naming both dates.
        **({"start_date": SETTINGS.start_date} if SETTINGS.start_date else {}),
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params=wonderware_backfill_params(),
    tags=["backfill", "wonderware", "clickhouse"],
    doc_md=__doc__,
)
def wonderware_backfill():
    @task
    def plan(params=None, dag_run=None, ti=None) -> list[dict]:
        """The chunks of this run: the tags TagRef lists (by the Params' selection) × the window."""
        # Imported here, not at the top: parsing this file (the dag processor, and every task
        # process before it runs) needs no driver (docs/performance.md, "Task start-up").
        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        run = RunInfo.of(dag_run, SETTINGS.schedule)
        tags = steps.discover(
            WonderwareHook(wonderware_conn_id=SETTINGS.wonderware_conn_id),
            params,
            run,
            scheduled_loads=SETTINGS.scheduled_loads,
        )
        return steps.plan(
            tags,
            params,
            run.data_interval_start,
            run.data_interval_end,
            xcom_push=ti.xcom_push,
            default_interval=run.default_interval(),
        )

    # Runs when chunks failed (to report them), not when planning did: nothing to report.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, outlets=[HISTORY_ASSET])
    def finalize(chunks: list[dict], results, params=None, ti=None, outlet_events=None) -> dict:
        return steps.finalize(
            chunks,
            results,
            params,
            planned_at=ti.xcom_pull(task_ids="plan", key=steps.PLANNED_AT),
            window=ti.xcom_pull(task_ids="plan", key=steps.WINDOW),
            asset_event=outlet_events[HISTORY_ASSET],
        )

    chunks = plan()
    loaded = WonderwareToClickHouseOperator.partial(
        task_id="fetch_insert",
        table=SETTINGS.table,
        wonderware_conn_id=SETTINGS.wonderware_conn_id,
        clickhouse_conn_id=SETTINGS.clickhouse_conn_id,
        columns=list(SETTINGS.history_columns),
        pool=SETTINGS.pool,  # None: default_pool
        map_index_template="{{ task.chunk_id }}",
    ).expand_kwargs(chunks)
    finalize(chunks, loaded.output)


wonderware_backfill()
