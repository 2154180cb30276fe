"""Task logic of the ``wonderware_backfill`` DAG: discover, plan and finalize."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.historian.planning import plan_chunks, resolve_window, summarize

if TYPE_CHECKING:
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

log = logging.getLogger("airflow.task")

# XCom key of the time plan finished: the run's duration is measured from there, because
# dag_run.start_date is the first try's start and would count a retried run's idle time.
PLANNED_AT = "planned_at"
_PREVIEW = 10


def discover(hook: WonderwareHook, params: Mapping[str, Any]) -> list[str]:
    """The tag names to load: ``TagRef`` of the Params' types, filtered by their patterns."""
    tags = hook.discover_tags(
        params["tag_types"],
        include=params["tag_include"],
        exclude=params["tag_exclude"],
        exclude_system=params["exclude_system_tags"],
    )
    log.info(
        "Discovered %d tags of types %s: %s",
        len(tags),
        params["tag_types"],
        ", ".join(tags[:_PREVIEW]) + (" …" if len(tags) > _PREVIEW else ""),
    )
    return tags


def plan(
    tags: Sequence[str],
    params: Mapping[str, Any],
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    *,
    xcom_push: Callable[..., Any],
) -> list[dict]:
    """The ``fetch_insert`` kwargs of each chunk of (the run's window × ``tags``).

    Bad Params (a half-set range, a reversed window, too many chunks) fail the task without retry.
    ``xcom_push(key=, value=)`` records when planning finished, for :func:`finalize`.
    """
    with fail_without_retry():
        start, end = resolve_window(
            params["range_start"], params["range_end"], data_interval_start, data_interval_end
        )
        chunks = plan_chunks(
            start, end, tags, window=params["chunk_window"], tag_group_size=params["tag_group_size"]
        )
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
    xcom_push(key=PLANNED_AT, value=time.time())
    return [
        {**c.as_kwargs(), "batch_size": params["batch_size"], "dry_run": params["dry_run"]} for c in chunks
    ]


def finalize(
    chunks: Sequence[Mapping[str, Any]],
    results: Iterable[dict | None] | None,
    params: Mapping[str, Any],
    *,
    planned_at: float | None,
    data_interval: tuple[Any, Any],
    asset_event: Any,
) -> dict:
    """Summarise the run; fail it if a chunk failed, skip it on a dry run, else describe the asset event.

    :param chunks: the planned chunks (``plan``'s output).
    :param results: what each ``fetch_insert`` instance returned (``None`` for a failed one).
    :param planned_at: ``time.time()`` when plan finished (``None``: the duration counts as 0).
    :param data_interval: the run's data interval, recorded in the asset event.
    :param asset_event: the outlet event accessor of the history asset; its ``extra`` is set.
    """
    planned_at = planned_at or time.time()
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
    asset_event.extra = {
        "rows": summary["rows"],
        "chunks": summary["chunks_total"],
        "data_interval_start": str(data_interval[0]),
        "data_interval_end": str(data_interval[1]),
    }
    return summary
