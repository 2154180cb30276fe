"""Task logic of the ``wonderware_backfill`` DAG: the ``plan`` task (:func:`discover`, then
:func:`plan`) and ``finalize``.

:func:`discover` goes first, so it also applies the run-type rules (:mod:`.runs`) and checks the
Params before the source is asked anything: a bad run fails at once, without retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.historian.planning import (
    check_chunking,
    plan_chunks,
    resolve_window,
    summarize,
)
from airflow_backfill_provider.historian.schema import TAG_TYPES
from airflow_backfill_provider.historian.selection import select_exact, select_from_types
from airflow_backfill_provider.params.wonderware_backfill import WINDOW_PARAMS
from airflow_backfill_provider.tasks.runs import SCHEDULED, RunInfo, note_on_run, require_triggered, skip_run

if TYPE_CHECKING:
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

log = logging.getLogger("airflow.task")

# XCom key of the time plan finished: the run's duration is measured from there, because
# dag_run.start_date is the first try's start and would count a retried run's idle time.
PLANNED_AT = "planned_at"
# XCom key of the window plan chunked ([start, end) as ISO strings): the Params' explicit window or
# the run's data interval. finalize, the run note and the asset event name it.
WINDOW = "window"
_PREVIEW = 10
SCHEDULED_LOADS_OFF = (
    "Scheduled loads are off until WONDERWARE_BACKFILL_START_DATE is set: this {run} loads nothing. "
    "Load history with `airflow backfill create --dag-id wonderware_backfill --from-date ... --to-date ...` "
    "or the Backfill dialog, one interval with a manual trigger, or set WONDERWARE_BACKFILL_START_DATE "
    "to load every interval from that date on (docs/wonderware-backfill.md, 'Safe by default')."
)


def check_run(params: Mapping[str, Any], run: RunInfo, *, scheduled_loads: bool) -> tuple[datetime, datetime]:
    """Apply the run-type rules and check the Params; return the window this run loads.

    A scheduled run of a deployment without a start date is skipped, saying why; explicit-range
    Params in a scheduled or backfill run, a bad window or bad chunking fail without retry.
    """
    if run.run_type == SCHEDULED and not scheduled_loads:
        skip_run(SCHEDULED_LOADS_OFF.format(run=run.describe()))
    with fail_without_retry():
        require_triggered(params, WINDOW_PARAMS, run)
        window = resolve_window(
            params["range_start"],
            params["range_end"],
            run.data_interval_start,
            run.data_interval_end,
            default_interval=run.default_interval(),
        )
        check_chunking(params["chunk_window"], params["tag_group_size"])
    return window


def discover(
    hook: WonderwareHook,
    params: Mapping[str, Any],
    run: RunInfo | None = None,
    *,
    scheduled_loads: bool = True,
) -> list[str]:
    """The tag names to load: ``TagRef`` of the Params' types, filtered by their patterns.

    With ``run``, :func:`check_run` goes first. Each tag type is asked for on its own, so a type
    without tags and a pattern without a match are logged as warnings, and a selection that keeps no
    tag fails without retry, naming the types and patterns.
    """
    if run is not None:
        start, end = check_run(params, run, scheduled_loads=scheduled_loads)
        log.info(
            "This %s run %s [%s, %s)",
            run.run_type,
            "counts (dry run, writes nothing)" if params["dry_run"] else "loads",
            start.isoformat(),
            end.isoformat(),
        )
    if params.get("tags"):
        return _exact_tags(hook, params["tags"])
    with fail_without_retry():  # also a refused login or an unknown database: retrying cannot help
        by_type = {
            tag_type: hook.discover_tags([tag_type], exclude_system=params["exclude_system_tags"])
            for tag_type in params["tag_types"]
        }
        selection = select_from_types(by_type, params["tag_include"], params["tag_exclude"])
    for warning in selection.warnings():
        log.warning("%s", warning)
    tags = selection.tags
    log.info(
        "Discovered %d tags of types %s: %s",
        len(tags),
        params["tag_types"],
        ", ".join(tags[:_PREVIEW]) + (" …" if len(tags) > _PREVIEW else ""),
    )
    return tags


def _exact_tags(hook: WonderwareHook, names: Sequence[str]) -> list[str]:
    """The ``tags`` Param: exactly these names, of any type, each checked against TagRef."""
    with fail_without_retry():
        tags = select_exact(hook.discover_tags(tuple(TAG_TYPES), exclude_system=False), names)
    log.info(
        "Loading exactly %d named tags (tags Param; tag types and patterns not used): %s",
        len(tags),
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
    default_interval: tuple[datetime, datetime] | None = None,
) -> list[dict]:
    """The ``fetch_insert`` kwargs of each chunk of (the run's window × ``tags``).

    Bad Params (a half-set range, a reversed window, too many chunks) fail the task without retry.
    ``default_interval`` is the window of a run without a data interval (:meth:`RunInfo.default_interval`).
    ``xcom_push(key=, value=)`` records when planning finished, for :func:`finalize`.
    """
    with fail_without_retry():
        start, end = resolve_window(
            params["range_start"],
            params["range_end"],
            data_interval_start,
            data_interval_end,
            default_interval=default_interval,
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
    xcom_push(key=WINDOW, value=[start.isoformat(), end.isoformat()])
    return [
        {
            **c.as_kwargs(),
            "batch_size": params["batch_size"],
            "dry_run": params["dry_run"],
            "allow_empty": params.get("allow_empty", False),
        }
        for c in chunks
    ]


def finalize(
    chunks: Sequence[Mapping[str, Any]],
    results: Iterable[dict | None] | None,
    params: Mapping[str, Any],
    *,
    planned_at: float | None,
    window: Sequence[str],
    asset_event: Any,
) -> dict:
    """Summarise the run; fail it if a chunk failed, skip it on a dry run, else describe the asset event.

    The summary, the run's note and the asset event name ``window``, the one the run loaded (the
    ``range_*`` Params' or the run's data interval); a load of no row says so on the run.

    :param chunks: the planned chunks (``plan``'s output).
    :param results: what each ``fetch_insert`` instance returned (``None`` for a failed one).
    :param planned_at: ``time.time()`` when plan finished (``None``: the duration counts as 0).
    :param window: ``[start, end)`` that plan chunked (ISO strings, XCom :data:`WINDOW`).
    :param asset_event: the outlet event accessor of the history asset; its ``extra`` is set.
    """
    planned_at = planned_at or time.time()
    summary = summarize(
        [c["chunk_id"] for c in chunks], list(results or []), time.time() - planned_at
    ).as_dict()
    summary["window_start"], summary["window_end"] = window
    tags = len({t for c in chunks for t in c.get("tags", ())})
    span = f"[{window[0]}, {window[1]})"
    if params["dry_run"]:
        log.info(
            "Backfill DRY RUN of %s: %d/%d chunks ok (success rate %.1f%%), would load %d rows, wrote nothing, %.1fs",
            span,
            summary["chunks_ok"],
            summary["chunks_total"],
            100 * summary["success_rate"],
            summary["source_rows"],
            summary["duration_seconds"],
        )
    else:
        log.info(
            "Backfill of %s done: %d/%d chunks ok (success rate %.1f%%), %d rows, %.0f rows/s, %.1fs",
            span,
            summary["chunks_ok"],
            summary["chunks_total"],
            100 * summary["success_rate"],
            summary["rows"],
            summary["rows_per_second"],
            summary["duration_seconds"],
        )
    if summary["chunks_failed"]:
        message = (
            f"{summary['chunks_failed']} of {summary['chunks_total']} chunks failed: "
            f"{summary['failed_chunk_ids'][:10]}. Re-run with `airflow backfill create ... "
            "--reprocess-behavior failed`, or clear the failed fetch_insert task instances."
        )
        note_on_run(f"Window {span}, {tags} tags: {summary['rows']} rows loaded, but {message}")
        raise AirflowFailException(message)
    if params["dry_run"]:
        reason = (
            f"Dry run of {span}: would load {summary['source_rows']} rows of {tags} tags in "
            f"{summary['chunks_total']} chunks; nothing written, no asset event."
        )
        note_on_run(reason)
        raise AirflowSkipException(reason)
    if summary["rows"] == 0:
        empty = (
            f"Loaded nothing: the source has no row in {span} for the {tags} tags "
            f"({summary['chunks_total']} chunk(s)). Check the window, the tag selection and the "
            "historian's connection (docs/wonderware-backfill.md, 'An empty read')."
        )
        log.warning("%s", empty)
        note_on_run(empty)
    else:
        note_on_run(
            f"Loaded {summary['rows']} rows of {tags} tags over {span} in {summary['chunks_total']} "
            f"chunk(s), {summary['duration_seconds']:.0f} s."
        )
    asset_event.extra = {
        "rows": summary["rows"],
        "chunks": summary["chunks_total"],
        "window_start": window[0],
        "window_end": window[1],
    }
    return summary
