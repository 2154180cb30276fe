"""
Wonderware / AVEVA Historian → ClickHouse backfill, one DAG run per data interval.

`discover` ──► `plan` ──► `fetch_insert` (mapped: one task instance per chunk) ──► `finalize`

Every run replaces exactly its own window in ClickHouse, so re-runs and retries never duplicate.
Drive it with `airflow backfill create --dag-id wonderware_backfill --from-date … --to-date …`,
with catchup from `WONDERWARE_BACKFILL_START_DATE`, or with the Trigger form's Params.

Deployment settings (environment variables), Params and operations:
[docs/wonderware-backfill.md](docs/wonderware-backfill.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TriggerRule, dag, task

from airflow_backfill_provider.hooks.wonderware import WonderwareHook
from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator
from airflow_backfill_provider.settings import WonderwareBackfillSettings
from airflow_backfill_provider.tasks import wonderware_backfill as steps

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
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "range_start": Param(
            None,
            type=["null", "string"],
            description="Explicit window start (ISO 8601); overrides the data interval.",
        ),
        "range_end": Param(None, type=["null", "string"], description="Explicit window end (exclusive)."),
        "tag_types": Param(
            ["analog", "discrete", "string"],
            type="array",
            items={"type": "string", "enum": ["analog", "discrete", "string", "complex", "event", "summary"]},
            description="TagRef tag types to load.",
        ),
        "tag_include": Param(
            [], type="array", items={"type": "string"}, description="Glob patterns to keep (empty: all)."
        ),
        "tag_exclude": Param(
            [], type="array", items={"type": "string"}, description="Glob patterns to drop."
        ),
        "exclude_system_tags": Param(True, type="boolean", description="Leave out Sys* tags."),
        "chunk_window": Param(
            "6h", type="string", pattern=r"^\d+[smhdw]$", description="Sub-window per chunk."
        ),
        "tag_group_size": Param(50, type="integer", minimum=1, description="Tags per chunk."),
        "batch_size": Param(50_000, type="integer", minimum=1000, description="Rows per source batch."),
        "dry_run": Param(False, type="boolean", description="Plan and count only; write nothing."),
    },
    tags=["backfill", "wonderware", "clickhouse"],
    doc_md=__doc__,
)
def wonderware_backfill():
    @task
    def discover(params=None) -> list[str]:
        return steps.discover(WonderwareHook(wonderware_conn_id=SETTINGS.wonderware_conn_id), params)

    @task
    def plan(
        tags: list[str], params=None, data_interval_start=None, data_interval_end=None, ti=None
    ) -> list[dict]:
        return steps.plan(tags, params, data_interval_start, data_interval_end, xcom_push=ti.xcom_push)

    # Runs when chunks failed (to report them), not when discovery or planning did: nothing to report.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, outlets=[HISTORY_ASSET])
    def finalize(chunks: list[dict], results, params=None, dag_run=None, ti=None, outlet_events=None) -> dict:
        return steps.finalize(
            chunks,
            results,
            params,
            planned_at=ti.xcom_pull(task_ids="plan", key=steps.PLANNED_AT),
            data_interval=(dag_run.data_interval_start, dag_run.data_interval_end),
            asset_event=outlet_events[HISTORY_ASSET],
        )

    tags = discover()
    chunks = plan(tags)
    loaded = WonderwareToClickHouseOperator.partial(
        task_id="fetch_insert",
        table=SETTINGS.table,
        wonderware_conn_id=SETTINGS.wonderware_conn_id,
        clickhouse_conn_id=SETTINGS.clickhouse_conn_id,
        map_index_template="{{ task.chunk_id }}",
    ).expand_kwargs(chunks)
    finalize(chunks, loaded.output)


wonderware_backfill()
