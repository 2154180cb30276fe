"""Task logic of the ``wonderware_sync`` DAG: one minute-level sync run, its metrics, and the
retroactive backfill of new tags (docs/sync.md).

``sync`` brings the history table up to now for every tag (:func:`~airflow_backfill_provider.historian.sync_transfer.sync_once`),
with the tag list from the Redis cache, and reports what it did in its log, its return value (XCom)
and Airflow's metrics. ``retroactive`` then compares the tags with those the sync has met and, when
the option is on, asks Airflow for a ``wonderware_backfill`` run of just the new ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ConfigurationError, fail_without_retry
from airflow_backfill_provider.historian.retroactive import (
    COLUMN,
    KNOWN,
    PENDING,
    SCHEDULED,
    TAG,
    new_names,
    pending_requests,
    request_id,
    tag_run_conf,
)
from airflow_backfill_provider.settings.schedule import interval_start
from airflow_backfill_provider.tasks.runs import note_on_run
from airflow_backfill_provider.utils import iso

if TYPE_CHECKING:
    from airflow_backfill_provider.hooks.airflow_api import AirflowApiHook
    from airflow_backfill_provider.hooks.clickhouse_sync import ClickHouseSyncTarget
    from airflow_backfill_provider.hooks.tag_cache import CachedTags, TagCache
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook
    from airflow_backfill_provider.settings.wonderware_sync import WonderwareSyncSettings

log = logging.getLogger("airflow.task")

METRIC_PREFIX = "wonderware_sync"
# The conf key of a reload backfill that names the request it serves (wonderware_backfill ignores it).
RELOAD_MARKER = "retroactive_request"
_PREVIEW = 10


def tag_list(source: WonderwareHook, cache: TagCache, tag_types: Sequence[str]) -> CachedTags:
    """The tags to sync, from the cache or TagRef (``Sys*`` left out)."""

    def load() -> list[str]:
        with fail_without_retry():  # a refused login or an unknown database: retrying cannot help
            return source.discover_tags(tuple(tag_types))

    return cache.get(load)


def sync(
    source: WonderwareHook,
    target: ClickHouseSyncTarget,
    cache: TagCache,
    settings: WonderwareSyncSettings,
    *,
    run_id: str,
    horizon: datetime | None = None,
) -> dict[str, Any]:
    """One sync run up to ``horizon`` (default: now); its summary, also logged and sent as metrics."""
    from airflow_backfill_provider.historian.sync_transfer import sync_once

    started = time.monotonic()
    tags = tag_list(source, cache, settings.tag_types)
    horizon = horizon or datetime.now(timezone.utc).replace(microsecond=0)
    with fail_without_retry():
        added = add_columns(target, settings)
        if not tags.tags:
            raise ConfigurationError(
                f"TagRef has no tags of type(s) {list(settings.tag_types)} (system tags left out): the "
                "sync has nothing to read. Check WONDERWARE_SYNC_TAG_TYPES and the Wonderware connection."
            )
        summary = sync_once(
            source,
            target,
            tags=tags.tags,
            horizon=horizon,
            retry=source.call_with_retry,
            options=settings.options,
            table=settings.table,
            run_id=run_id,
            columns=settings.history_columns,
        )
    summary["table"] = settings.table
    summary["columns_added"] = added
    summary["tag_cache"] = tags.cache
    summary["task_seconds"] = round(time.monotonic() - started, 3)
    log.info(
        "Sync summary: %d new rows (%d read) for %d tags, oldest tag's lag %s → %s%s, %.2f s, tag cache %s",
        summary["rows_inserted"],
        summary["rows_read"],
        summary["tags"],
        _seconds(summary["lag_before_seconds"]),
        _seconds(summary["lag_after_seconds"]),
        f" ({summary['lag_after_tag']})" if summary.get("lag_after_tag") else "",
        summary["task_seconds"],
        tags.cache,
    )
    note_on_run(
        f"Synced {summary['rows_inserted']} new rows ({summary['rows_read']} read) of {summary['tags']} tags "
        f"up to {iso(horizon)}. Oldest tag's lag {_seconds(summary['lag_before_seconds'])} → "
        f"{_seconds(summary['lag_after_seconds'])}"
        + (f" ({summary['lag_after_tag']})" if summary.get("lag_after_tag") else "")
        + f"; tag list {_TAG_LIST_FROM.get(tags.cache, tags.cache)}"
        + (f"; columns added: {', '.join(added)}" if added else "")
        + "."
    )
    emit_metrics(summary)
    return summary


_TAG_LIST_FROM = {
    "hit": "from the Redis cache",
    "miss": "from TagRef, now cached",
    "off": "from TagRef (no cache)",
    "unavailable": "from TagRef (Redis unreachable)",
}


def _seconds(value: float | None) -> str:
    return "none yet (no row seen)" if value is None else f"{value:.1f} s"


def add_columns(target: ClickHouseSyncTarget, settings: WonderwareSyncSettings) -> list[str]:
    """Record the selected History columns the sync has not met, and add those the table lacks.

    A column is new when the names the sync has met (``<table>_sync_known``) lack it, whoever added
    it to the table (a ``wonderware_backfill`` chunk adds the selected columns too). The first time,
    the columns the table already has are recorded as met. New columns are recorded before the
    ``ALTER``, so a run that dies in between finds them again: ``pending`` with the retroactive
    backfill on (the ``retroactive`` task asks Airflow to reload their history), else as met, with a
    warning that the rows loaded before hold NULL there until reloaded. Returns the new columns.
    """
    hook, table, selected = target.hook, settings.table, settings.history_columns
    known = target.known(COLUMN)
    if not hook.table_exists(table):
        hook.ensure_history_columns(table, selected)  # created with just the selected columns
        target.record_known(COLUMN, [c for c in selected if c not in known], KNOWN)
        return []
    if known:
        new = [c for c in selected if c not in known]
    else:  # the first time: what the table holds is met, what it lacks is new
        new = hook.missing_columns(table, selected)
        target.record_known(COLUMN, [c for c in selected if c not in new], KNOWN)
    if not new:
        return []
    target.record_known(COLUMN, new, PENDING if settings.retroactive else KNOWN, request_id(COLUMN, new))
    hook.add_missing_columns(table, selected)
    if settings.retroactive:
        log.info("New columns %s in %s; the retroactive backfill reloads their history.", new, table)
    else:
        log.warning(
            "New columns %s in %s: rows loaded before hold NULL there. The retroactive backfill is off "
            "(WONDERWARE_SYNC_RETROACTIVE): reload the history with `airflow backfill create --dag-id "
            "%s --from-date ... --to-date ... --reprocess-behavior completed`.",
            new,
            table,
            settings.backfill_dag_id,
        )
    return new


def emit_metrics(summary: Mapping[str, Any]) -> None:
    """Counters, gauges and a timer through Airflow's stats (no-ops unless a backend is configured)."""
    from airflow.sdk.observability import stats

    tags = {"table": summary["table"]}
    stats.incr(f"{METRIC_PREFIX}.runs", tags=tags)
    stats.incr(f"{METRIC_PREFIX}.rows_inserted", count=int(summary["rows_inserted"]), tags=tags)
    stats.incr(f"{METRIC_PREFIX}.rows_read", count=int(summary["rows_read"]), tags=tags)
    stats.incr(f"{METRIC_PREFIX}.tag_cache.{summary['tag_cache']}", tags=tags)
    for name in ("lag_before_seconds", "lag_after_seconds"):
        if summary[name] is not None:
            stats.gauge(f"{METRIC_PREFIX}.{name}", float(summary[name]), tags=tags)
    stats.timing(f"{METRIC_PREFIX}.duration", float(summary["task_seconds"]) * 1000.0, tags=tags)


def retroactive_tags(
    target: ClickHouseSyncTarget,
    settings: WonderwareSyncSettings,
    api: AirflowApiHook | None,
    *,
    sync_run_id: str,
) -> dict[str, Any]:
    """Record the tags the sync has claimed; with the option on, ask for a backfill run of the new ones.

    The tags are those of the sync's state, so a new tag is always claimed by the sync before a
    backfill of it is asked for (its chunks see the claim as their fence). The first time (no tag met
    yet) every tag is recorded as met and nothing is asked: the history before the sync's first run
    is ``wonderware_backfill``'s job. Returns what it did.
    """
    known = target.known(TAG)
    new = new_names(target.claimed_tags(), known)
    if not known:
        target.record_known(TAG, new, KNOWN)
        log.info("Retroactive backfill: first run, %d tags recorded as met; nothing to backfill.", len(new))
        return {"new_tags": 0, "recorded": len(new), "requests": []}
    if new and not settings.retroactive:
        target.record_known(TAG, new, KNOWN)
        log.warning(
            "%d new tags (%s): the retroactive backfill is off (WONDERWARE_SYNC_RETROACTIVE), so their "
            "history before the sync's first read of them is not loaded. Load it with a manual run of "
            "wonderware_backfill with the tags Param set to their names.",
            len(new),
            _preview(new),
        )
        return {"new_tags": len(new), "recorded": len(new), "requests": []}
    if new:
        request = request_id(TAG, new)
        target.record_known(TAG, new, PENDING, request)
        log.info("Retroactive backfill: %d new tags (%s), request %s", len(new), _preview(new), request)
    requests = []
    for request, names in pending_requests(target.known(TAG) if new else known).items():
        requests.append(_request_tag_run(target, api, settings, request, names, sync_run_id))
    return {"new_tags": len(new), "recorded": len(new), "requests": requests}


def _request_tag_run(
    target: ClickHouseSyncTarget,
    api: AirflowApiHook | None,
    settings: WonderwareSyncSettings,
    request: str,
    names: Sequence[str],
    sync_run_id: str,
) -> dict[str, Any]:
    started = time.monotonic()
    claims = {t: s.claim_start for t, s in target.read_state(names).items()}
    end = min(claims.values()) if len(claims) == len(names) else datetime.now(timezone.utc)
    conf = tag_run_conf(names, settings.history_start, end)
    if api is None:  # the option was turned off after the request was recorded
        log.warning(
            "Retroactive backfill request %s for %d tags left pending: the option is off.",
            request,
            len(names),
        )
        return {"request": request, "tags": len(names), "created": False, "state": PENDING}
    run, created = api.trigger_dag_run(
        settings.backfill_dag_id,
        request,
        conf,
        note=f"Retroactive backfill of {len(names)} new tags, asked for by wonderware_sync run {sync_run_id}.",
    )
    target.record_known(TAG, names, SCHEDULED, request)
    log.info(
        "Retroactive backfill: %s run %s of %s for %d tags over [%s, %s) (%s) in %.2f s",
        "created" if created else "found existing",
        request,
        settings.backfill_dag_id,
        len(names),
        conf["range_start"],
        conf["range_end"],
        run.get("state"),
        time.monotonic() - started,
    )
    return {
        "request": request,
        "tags": len(names),
        "created": created,
        "state": run.get("state"),
        "range_start": conf["range_start"],
        "range_end": conf["range_end"],
    }


def retroactive_columns(
    target: ClickHouseSyncTarget,
    settings: WonderwareSyncSettings,
    api: AirflowApiHook | None,
    *,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Ask Airflow to reload the history of columns recorded ``pending``.

    Two requests, both idempotent: a native backfill of ``wonderware_backfill`` over its complete
    intervals from the one holding the history start, with reprocess behaviour ``completed`` (it
    reloads intervals loaded before the column existed, shows in the UI's backfill banner and can be
    paused or cancelled there; its conf carries the request id, so a repeat finds it), and a manual
    run for the interval in progress, up to now (the run id is the request id; its chunks stop at
    the sync's fence). Airflow allows one backfill of a DAG at a time: while another runs, the
    request stays pending for the next sync run.
    """
    from airflow_backfill_provider.hooks.airflow_api import AirflowApiError

    out = []
    now = now or datetime.now(timezone.utc)
    for request, names in pending_requests(target.known(COLUMN)).items():
        if api is None:
            log.warning("Reload of columns %s (request %s) left pending: the option is off.", names, request)
            continue
        started = time.monotonic()
        first = interval_start(settings.backfill_schedule, settings.history_start)
        current = interval_start(settings.backfill_schedule, now)
        backfill = _existing_backfill(api, settings.backfill_dag_id, request)
        if backfill is None and first < current:
            try:
                backfill = api.create_backfill(
                    settings.backfill_dag_id,
                    first,
                    current,
                    reprocess_behavior="completed",
                    max_active_runs=settings.backfill_max_active_runs,
                    dag_run_conf={RELOAD_MARKER: request},
                )
            except AirflowApiError as err:
                if err.status != 409:
                    raise
                # ours, made by an attempt whose answer was lost, or another backfill of the DAG
                backfill = _existing_backfill(api, settings.backfill_dag_id, request)
                if backfill is None:
                    log.warning("Reload of columns %s waits: %s. The next sync run asks again.", names, err)
                    out.append({"request": request, "columns": names, "state": PENDING})
                    continue
        run, _ = api.trigger_dag_run(
            settings.backfill_dag_id,
            f"{request}__current",
            {
                "range_start": iso(current),
                "range_end": iso(now),
                "dry_run": False,
                RELOAD_MARKER: request,
            },
            note=f"Reload of the interval in progress for new columns {', '.join(names)}.",
        )
        backfill_id = backfill["id"] if backfill else None
        target.record_known(COLUMN, names, SCHEDULED, f"backfill {backfill_id}, run {run['dag_run_id']}")
        log.info(
            "Retroactive backfill: columns %s reloaded by native backfill %s of %s over [%s, %s) "
            "(reprocess completed) and run %s over [%s, %s), asked in %.2f s",
            names,
            backfill_id,
            settings.backfill_dag_id,
            iso(first),
            iso(current),
            run["dag_run_id"],
            iso(current),
            iso(now),
            time.monotonic() - started,
        )
        out.append(
            {
                "request": request,
                "columns": names,
                "state": SCHEDULED,
                "backfill_id": backfill_id,
                "run_id": run["dag_run_id"],
            }
        )
    return out


def _existing_backfill(api: AirflowApiHook, dag_id: str, request: str) -> dict | None:
    answer = api.request("GET", f"/api/v2/backfills?dag_id={dag_id}&limit=100&order_by=-id")
    for backfill in answer.get("backfills", []):
        if (backfill.get("dag_run_conf") or {}).get(RELOAD_MARKER) == request:
            return backfill
    return None


def _preview(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names[:_PREVIEW]) + (" …" if len(names) > _PREVIEW else "")


def require_prerequisites(settings: WonderwareSyncSettings) -> None:
    """With the retroactive backfill on, fail the DAG's import unless what it needs is there.

    Called at parse time, so the DAG shows an import error that names each missing connection and
    how to add it, instead of a sync that fails at its first new tag.
    """
    if not settings.retroactive:
        return
    from airflow.sdk.bases.hook import BaseHook

    needed = {
        settings.airflow_api_conn_id: (
            "AIRFLOW_API_CONN_ID",
            "an airflowapi connection to the api-server with the Login and Password of a user allowed to "
            "trigger wonderware_backfill (docs/sync.md, 'Retroactive backfill')",
        ),
        settings.clickhouse_conn_id: ("CLICKHOUSE_CONN_ID", "the ClickHouse connection the sync writes to"),
    }
    missing = []
    for conn_id, (variable, what) in needed.items():
        try:
            BaseHook.get_connection(conn_id)
        except Exception:
            missing.append(f"connection {conn_id!r} ({variable}): {what}")
    if missing:
        raise ConfigurationError(
            "WONDERWARE_SYNC_RETROACTIVE is on, but it needs "
            + "; and ".join(missing)
            + ". Add the connection(s) (e.g. `airflow connections add <id> --conn-type ...` or an "
            "AIRFLOW_CONN_<ID> variable), set the variable to an existing one, or turn "
            "WONDERWARE_SYNC_RETROACTIVE off."
        )
