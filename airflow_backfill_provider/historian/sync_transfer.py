"""One minute-level sync run, from the historian to a target that appends exactly. No Airflow import.

A run plans its windows from the per-tag state (:mod:`.sync`), records its claims, then for each
group reads the source window into spool files, stages them and appends the rows the target lacks
(:func:`~.transfer.transfer_chunk` with the target's append stage), and records the group done.
A run that dies half-way leaves its tags claimed with their previous watermark: the next run reads
the same windows again, and the append skips what is already there.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from airflow_backfill_provider.exceptions import ReconciliationError
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE
from airflow_backfill_provider.historian.sync import (
    SyncGroup,
    SyncOptions,
    SyncPlan,
    TagState,
    claim_rows,
    done_rows,
    lags,
    plan_sync,
)
from airflow_backfill_provider.historian.transfer import (
    DEFAULT_SPOOL_ROWS,
    HistorySource,
    Stage,
    transfer_chunk,
)
from airflow_backfill_provider.utils import iso

log = logging.getLogger(__name__)

# Tags named per problem in a log line or an error: enough to act on, short enough to read.
_SHOWN = 10


class SyncTarget(Protocol):
    """A target the sync writes to: the per-tag state, and stages that append exactly."""

    def claim(
        self, tags: Sequence[str], plan: Callable[[dict[str, TagState]], tuple[SyncPlan, Sequence[TagState]]]
    ) -> SyncPlan:
        """Read the live state of ``tags``, call ``plan`` with it, record the claim rows it returns;
        return the plan."""

    def append_stage(
        self, table: str, key: str, on_commit: Callable[[dict[str, Any]], Sequence[TagState]]
    ) -> Stage:
        """A stage whose commit appends the rows the window lacks, then records the state rows
        ``on_commit`` returns for its result (``inserted_rows``, ``source_rows``, ``append_seconds``,
        ``last_seen`` per tag, ``mismatched``: ``{tag: (held, source)}``)."""


class _GroupTarget:
    """The :class:`StagingTarget` that :func:`transfer_chunk` loads one group into."""

    def __init__(self, target: SyncTarget, on_commit: Callable[[dict[str, Any]], Sequence[TagState]]) -> None:
        self._target = target
        self._on_commit = on_commit

    def stage(self, table: str, key: str) -> Stage:
        return self._target.append_stage(table, key, self._on_commit)


def sync_once(
    source: HistorySource,
    target: SyncTarget,
    *,
    tags: Sequence[str],
    horizon: datetime,
    retry: Callable[[Callable[[], int], str], int],
    options: SyncOptions | None = None,
    table: str = DEFAULT_TABLE,
    batch_size: int = 50_000,
    run_id: str | None = None,
    spool_dir: str | None = None,
    spool_rows: int = DEFAULT_SPOOL_ROWS,
    source_options: dict[str, Any] | None = None,
    strict: bool = True,
    columns: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Bring ``table`` up to ``horizon`` for ``tags``; return what the run did (small, JSON-serialisable).

    :param horizon: the read instant; rows at or after it are left to the next run.
    :param retry: ``retry(fn, what)`` runs a whole group read under the source's retry policy.
    :param strict: raise :class:`ReconciliationError` when a window's count differs from the
        source's after the append (after recording the state, so the sync is never stuck on it);
        with ``False`` the mismatch is logged as a warning and returned.
    :param columns: the History columns to read and append (names; default all 33); the table must
        have them (``ClickHouseBackfillHook.add_missing_columns``).
    """
    options = options or SyncOptions()
    run_id = run_id or uuid.uuid4().hex
    started = time.monotonic()

    def planned(states: dict[str, TagState]) -> tuple[SyncPlan, list[TagState]]:
        plan = plan_sync(tags, states, horizon, options)
        return plan, claim_rows(plan, run_id)

    plan = target.claim(sorted(set(tags)), planned)
    _log_plan(plan)

    rows = inserted = 0
    read_seconds = write_seconds = append_seconds = 0.0
    seen: dict[str, datetime] = {}
    mismatches: list[dict[str, Any]] = []
    for group in plan.groups:
        commits: list[dict[str, Any]] = []

        def done(commit: dict[str, Any], group: SyncGroup = group, commits: list = commits) -> list[TagState]:
            commits.append(commit)
            return done_rows(plan, group, commit["last_seen"], run_id)

        result = transfer_chunk(
            source,
            _GroupTarget(target, done),
            table=table,
            tags=group.tags,
            start=group.start,
            end=group.end,
            batch_size=batch_size,
            retry=retry,
            spool_dir=spool_dir,
            spool_rows=spool_rows,
            source_options=source_options,
            staged=True,
            columns=columns,
        )
        commit = commits[-1]
        seen.update(commit["last_seen"])
        rows += result["rows"]
        inserted += commit["inserted_rows"]
        read_seconds += result["read_seconds"]
        write_seconds += result["write_seconds"]
        append_seconds += commit["append_seconds"]
        log.info(
            "Sync %s – %s, %d tags: %d source rows, %d new (read %.2fs, write %.2fs)",
            iso(group.start),
            iso(group.end),
            len(group.tags),
            result["rows"],
            commit["inserted_rows"],
            result["read_seconds"],
            result["write_seconds"],
        )
        if commit["mismatched"]:
            mismatches.append(
                {"start": iso(group.start), "end": iso(group.end), "tags": commit["mismatched"]}
            )

    before = {t: s.last_seen for t, s in plan.previous.items()}
    after = dict(before)
    for tag, newest in seen.items():
        after[tag] = max(newest, after[tag]) if after.get(tag) else newest
    lag_after = lags(plan.horizon, after)
    seconds = time.monotonic() - started
    summary = {
        "run_id": run_id,
        "horizon": iso(plan.horizon),
        "tags": len(plan.tags),
        "groups": len(plan.groups),
        "earliest_start": iso(min((g.start for g in plan.groups), default=None)),
        "first_run_tags": len(plan.first_run),
        "held_tags": len(plan.held),
        "skipped_tags": len(plan.skipped),
        "rows_read": rows,
        "rows_inserted": inserted,
        "seconds": round(seconds, 3),
        "read_seconds": round(read_seconds, 3),
        "write_seconds": round(write_seconds, 3),
        "append_seconds": round(append_seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
        # the oldest tag's lag: a tag that stops sending shows here (docs/sync.md, Metrics)
        "lag_before_seconds": lags(plan.horizon, before)["oldest_seconds"],
        "lag_after_seconds": lag_after["oldest_seconds"],
        "lag_after_tag": lag_after["oldest_tag"],
        "freshest_lag_after_seconds": lag_after["freshest_seconds"],
        "mismatched_windows": len(mismatches),
    }
    log.info(
        "Sync up to %s: %d tags in %d groups, %d source rows read, %d inserted in %.2fs",
        summary["horizon"],
        summary["tags"],
        summary["groups"],
        rows,
        inserted,
        seconds,
    )
    if mismatches:
        message = _mismatch_message(table, mismatches)
        if strict:
            raise ReconciliationError(message)
        log.warning("%s", message)
        summary["mismatches"] = mismatches
    return summary


def _log_plan(plan: SyncPlan) -> None:
    if plan.first_run:
        log.info(
            "First sync of %d tags, from %s (older history is wonderware_backfill's): %s",
            len(plan.first_run),
            iso(min(plan.starts[t] for t in plan.first_run if t in plan.starts)) if plan.starts else None,
            _preview(plan.first_run),
        )
    if plan.held:
        # Normal, not a warning: a tag's first window starts first_run_offset back, later than
        # max_tag_lag + lookback, so a quiet tag is held at that claim until the watermark passes it.
        log.info(
            "%d tags start at their previous claim, later than lookback and lag allowance would reach "
            "(claims never go back: after a tag's first run, or when the lookback or lag allowance "
            "grew, the window widens as the watermark advances): %s",
            len(plan.held),
            _preview(plan.held),
        )
    if plan.skipped:
        log.warning(
            "%d tags not read: their window starts at or after the horizon %s (has the clock gone back?): %s",
            len(plan.skipped),
            iso(plan.horizon),
            _preview(plan.skipped),
        )


def _mismatch_message(table: str, mismatches: list[dict[str, Any]]) -> str:
    parts = []
    for m in mismatches:
        shown = list(m["tags"].items())[:_SHOWN]
        detail = ", ".join(f"{t!r}: {held} held vs {src} at the source" for t, (held, src) in shown)
        more = len(m["tags"]) - len(shown)
        parts.append(f"{m['start']} – {m['end']}: {detail}" + (f" (+{more} tags)" if more > 0 else ""))
    return (
        f"{table}: after the sync's append, {len(mismatches)} window(s) hold a different number of rows "
        f"than the source: {'; '.join(parts)}. The rows the source has were all appended; a difference "
        "means the table holds rows the source no longer has, or the source repeats a (TagName, DateTime). "
        "A wonderware_backfill reprocess of that interval for these tags makes it exact once the sync's "
        "claims have moved past it (lookback + max tag lag later; until then the fence stops a backfill there)."
    )


def _preview(items: Sequence[str]) -> str:
    shown = ", ".join(repr(t) for t in items[:_SHOWN])
    return shown + (f", … (+{len(items) - _SHOWN})" if len(items) > _SHOWN else "")
