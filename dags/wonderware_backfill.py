"""
Wonderware / AVEVA Historian → ClickHouse backfill, one DAG run per data interval.

    discover ──► plan ──► fetch_insert (mapped: one task instance per chunk) ──► finalize

Drive it with Airflow's own tools:

* ``airflow backfill create --dag-id wonderware_backfill --from-date 2025-01-01 --to-date 2025-02-01``
* catchup: unpausing the DAG creates every missed interval since ``WONDERWARE_BACKFILL_START_DATE``;
* the UI's Trigger form (Params below: explicit range, tag filters, chunk sizes, dry run).

Every run replaces exactly its own window in ClickHouse, so re-runs and retries never duplicate.
Deployment settings come from environment variables, read at parse time without any I/O:

==================================  ===========================  =====================================
variable                            default                      meaning
==================================  ===========================  =====================================
WONDERWARE_BACKFILL_SCHEDULE        ``@daily``                   cron of the data intervals (UTC)
WONDERWARE_BACKFILL_START_DATE      ``2025-01-01``               first interval (catchup starts here)
WONDERWARE_BACKFILL_END_DATE        (none)                       last interval, optional
WONDERWARE_BACKFILL_CATCHUP         ``true``                     create missed intervals on unpause
WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS ``4``                        intervals running at once
WONDERWARE_BACKFILL_TABLE           ``WonderwareHistory``        target table
WONDERWARE_BACKFILL_RETRIES         ``3``                        retries per task (exponential backoff)
WONDERWARE_BACKFILL_RETRY_DELAY     ``30``                       seconds before the first retry
WONDERWARE_CONN_ID                  ``wonderware_default``       source connection
CLICKHOUSE_CONN_ID                  ``clickhouse_default``       target connection
==================================  ===========================  =====================================
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TriggerRule, dag, task

from airflow_backfill_provider.operators.wonderware import WonderwareToClickHouseOperator

SCHEDULE = os.environ.get("WONDERWARE_BACKFILL_SCHEDULE", "@daily")
START_DATE = pendulum.parse(os.environ.get("WONDERWARE_BACKFILL_START_DATE", "2025-01-01"), tz="UTC")
_END = os.environ.get("WONDERWARE_BACKFILL_END_DATE")
END_DATE = pendulum.parse(_END, tz="UTC") if _END else None
CATCHUP = os.environ.get("WONDERWARE_BACKFILL_CATCHUP", "true").lower() in ("1", "true", "yes")
MAX_ACTIVE_RUNS = int(os.environ.get("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", "4"))
TABLE = os.environ.get("WONDERWARE_BACKFILL_TABLE", "WonderwareHistory")
WONDERWARE_CONN_ID = os.environ.get("WONDERWARE_CONN_ID", "wonderware_default")
CLICKHOUSE_CONN_ID = os.environ.get("CLICKHOUSE_CONN_ID", "clickhouse_default")
RETRIES = int(os.environ.get("WONDERWARE_BACKFILL_RETRIES", "3"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("WONDERWARE_BACKFILL_RETRY_DELAY", "30")))

# Downstream transformations schedule on this asset; finalize emits an event only when every chunk
# of the interval landed.
HISTORY_ASSET = Asset(name=f"clickhouse_{TABLE}", uri=f"clickhouse://{CLICKHOUSE_CONN_ID}/{TABLE}")


@dag(
    dag_id="wonderware_backfill",
    description="Backfill Wonderware History into ClickHouse, interval by interval, exactly once.",
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=CATCHUP,
    max_active_runs=MAX_ACTIVE_RUNS,
    default_args={
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
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
        import logging

        from airflow_backfill_provider.hooks.wonderware import WonderwareHook

        tags = WonderwareHook(wonderware_conn_id=WONDERWARE_CONN_ID).discover_tags(
            params["tag_types"],
            include=params["tag_include"],
            exclude=params["tag_exclude"],
            exclude_system=params["exclude_system_tags"],
        )
        logging.getLogger("airflow.task").info(
            "Discovered %d tags of types %s: %s",
            len(tags),
            params["tag_types"],
            ", ".join(tags[:10]) + (" …" if len(tags) > 10 else ""),
        )
        return tags

    @task
    def plan(
        tags: list[str], params=None, data_interval_start=None, data_interval_end=None, ti=None
    ) -> list[dict]:
        import logging
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from airflow_backfill_provider.historian.planning import plan_chunks, resolve_window

        log = logging.getLogger("airflow.task")
        try:
            start, end = resolve_window(
                params["range_start"], params["range_end"], data_interval_start, data_interval_end
            )
            chunks = plan_chunks(
                start, end, tags, window=params["chunk_window"], tag_group_size=params["tag_group_size"]
            )
        except ValueError as err:
            raise AirflowFailException(str(err)) from err
        log.info(
            "Window %s – %s, %d tags: %d chunks of ≤ %s × ≤ %d tags%s",
            start.isoformat(),
            end.isoformat(),
            len(tags),
            len(chunks),
            params["chunk_window"],
            params["tag_group_size"],
            " (dry run: nothing will be written)" if params["dry_run"] else "",
        )
        # finalize measures the run's duration from here (dag_run.start_date is the first try's start).
        ti.xcom_push(key="planned_at", value=time.time())
        return [
            {**c.as_kwargs(), "batch_size": params["batch_size"], "dry_run": params["dry_run"]}
            for c in chunks
        ]

    # Runs when chunks failed (to report them), not when discovery or planning did: nothing to report.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, outlets=[HISTORY_ASSET])
    def finalize(chunks: list[dict], results, params=None, dag_run=None, ti=None, outlet_events=None) -> dict:
        import logging
        import time

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airflow_backfill_provider.historian.planning import summarize

        log = logging.getLogger("airflow.task")
        planned_at = ti.xcom_pull(task_ids="plan", key="planned_at") or time.time()
        summary = summarize(
            [c["chunk_id"] for c in chunks], list(results or []), time.time() - planned_at
        ).as_dict()
        log.info(
            "Backfill %s: %d/%d chunks ok (success rate %.1f%%), %d rows, %.0f rows/s, %.1fs",
            "DRY RUN" if params["dry_run"] else "done",
            summary["chunks_ok"],
            summary["chunks_total"],
            100 * summary["success_rate"],
            summary["rows"],
            summary["rows_per_second"],
            summary["duration_seconds"],
        )
        if summary["chunks_failed"]:
            raise AirflowFailException(
                f"{summary['chunks_failed']} of {summary['chunks_total']} chunks failed: "
                f"{summary['failed_chunk_ids'][:10]}. Re-run with `airflow backfill create ... "
                "--reprocess-behavior failed`, or clear the failed fetch_insert task instances."
            )
        if params["dry_run"]:
            raise AirflowSkipException("Dry run: nothing written, no asset event.")
        outlet_events[HISTORY_ASSET].extra = {
            "rows": summary["rows"],
            "chunks": summary["chunks_total"],
            "data_interval_start": str(dag_run.data_interval_start),
            "data_interval_end": str(dag_run.data_interval_end),
        }
        return summary

    tags = discover()
    chunks = plan(tags)
    loaded = WonderwareToClickHouseOperator.partial(
        task_id="fetch_insert",
        table=TABLE,
        wonderware_conn_id=WONDERWARE_CONN_ID,
        clickhouse_conn_id=CLICKHOUSE_CONN_ID,
        map_index_template="{{ task.chunk_id }}",
    ).expand_kwargs(chunks)
    finalize(chunks, loaded.output)


wonderware_backfill()
