"""
Wonderware / AVEVA Historian → ClickHouse, kept current minute by minute.

`sync` ──► `retroactive`

Each run reads, per tag, from its own watermark minus a lookback (10 minutes by default) up to now,
and appends exactly the rows ClickHouse lacks: late rows inside the lookback are caught, the overlap
never duplicates, and a run's cost follows the new rows, not the table. The tag list comes from a
Redis cache (`redis_default`, one hour); without Redis the sync goes on uncached. `retroactive`
records the tags the sync has met and, with `WONDERWARE_SYNC_RETROACTIVE` on, asks Airflow for a
`wonderware_backfill` run that loads the history of just the new ones.

The sync's first run starts one hour back; older history is `wonderware_backfill`'s job. The two
share the table and never lose or double each other's rows.

Settings, metrics and operations:
[docs/sync.md](https://github.com/airflow-backfill-provider/airflow-backfill-provider/blob/main/docs/sync.md) of airflow-backfill-provider.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import CronTriggerTimetable, dag, task

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.settings.wonderware_sync import WonderwareSyncSettings
from airflow_backfill_provider.tasks import wonderware_sync as steps

SETTINGS = WonderwareSyncSettings.from_env()
steps.require_prerequisites(SETTINGS)


# The hooks are imported in the tasks that use them: parsing this file (the dag processor, and
# every task process before it runs) imports no driver (docs/performance.md, "Task start-up").
def _target():
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
    from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget

    return ClickHouseSyncTarget(ClickHouseBackfillHook(SETTINGS.clickhouse_conn_id), SETTINGS.table)


@dag(
    dag_id="wonderware_sync",
    description="Keep Wonderware History in ClickHouse current, minute by minute, exactly once.",
    schedule=CronTriggerTimetable(SETTINGS.schedule, timezone="UTC"),
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    # A run syncs up to now whatever its date: a backfill of this DAG would only repeat the latest
    # minute. History is wonderware_backfill's job.
    allowed_run_types=["scheduled", "manual"],
    default_args={
        "retries": SETTINGS.retries,
        "retry_delay": SETTINGS.retry_delay,
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=2),
    },
    tags=["sync", "wonderware", "clickhouse"],
    doc_md=__doc__,
)
def wonderware_sync():
    @task(execution_timeout=timedelta(minutes=10))
    def sync(run_id=None) -> dict:
        from airflow_backfill_provider.hooks.tag_cache import TagCache
        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        with fail_without_retry():  # a missing connection fails at once, naming it
            source = WonderwareHook(wonderware_conn_id=SETTINGS.wonderware_conn_id)
            cache = TagCache(SETTINGS.redis_conn_id, SETTINGS.tag_cache_key, SETTINGS.tag_cache_ttl)
            return steps.sync(source, _target(), cache, SETTINGS, run_id=run_id)

    @task
    def retroactive(summary: dict, run_id=None) -> dict:
        from airflow_backfill_provider.hooks.airflow_api import AirflowApiHook

        with fail_without_retry():
            target = _target()
            api = AirflowApiHook(SETTINGS.airflow_api_conn_id) if SETTINGS.retroactive else None
            return {
                **steps.retroactive_tags(target, SETTINGS, api, sync_run_id=run_id),
                "column_reloads": steps.retroactive_columns(target, SETTINGS, api),
            }

    retroactive(sync())


wonderware_sync()
