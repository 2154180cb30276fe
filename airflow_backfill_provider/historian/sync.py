"""Planning the minute-level sync: per-tag watermarks, read windows, claims and the backfill's fence.

Pure functions and records, no Airflow and no ClickHouse import (the state lives in a ClickHouse
table, read and written by ``hooks/clickhouse_sync.py``; docs/sync.md explains the design).

Per tag the sync keeps:

- ``watermark``: the read horizon of the last run that completed for the tag (how far the sync has
  read the *source*, rows or not), so a quiet tag's window does not grow without bound;
- ``last_seen``: the newest ``DateTime`` the sync has read for the tag, so a tag whose rows arrive
  late as a whole (store-and-forward, a slow collector) keeps its own place;
- ``claim_start``: the start of the window the last run read. It only ever goes up, and a run
  records it *before* it writes; a backfill chunk stops below the lowest claim of its tags (the
  fence), so the two never write the same rows.

A run with horizon ``h`` reads ``[start, h)`` per tag, where ``start`` is
``max(last_seen, watermark - max_tag_lag) - lookback`` rounded down to ``start_granularity`` and
never below the previous claim; a tag the sync has never read starts at ``h - first_run_offset``.
Tags with the same start share one source query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import MAX_TAGS_PER_QUERY
from airflow_backfill_provider.utils import check_identifier, parse_duration, quote_identifier, to_utc

DEFAULT_LOOKBACK = timedelta(minutes=10)
DEFAULT_FIRST_RUN_OFFSET = timedelta(hours=1)
# How far behind the read horizon a tag's own rows may lag and still be caught (with the lookback on
# top); beyond it a quiet tag's window stops growing and its claim keeps pace with the others.
DEFAULT_MAX_TAG_LAG = timedelta(hours=1)
# Window starts are rounded down to this step, so tags a few seconds apart share one query.
DEFAULT_START_GRANULARITY = timedelta(minutes=1)
# Tags per source query: SQL Server's parameter limit is the bound.
DEFAULT_SYNC_TAG_GROUP_SIZE = MAX_TAGS_PER_QUERY

CLAIMED = "claimed"
DONE = "done"
STATE_TABLE_SUFFIX = "_sync_state"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SyncOptions:
    """How far back each run reads. Durations accept what :func:`~airflow_backfill_provider.utils.parse_duration`
    does (``"10m"``, seconds, a timedelta); bad values raise :class:`ConfigurationError` naming them."""

    lookback: timedelta | str | int = DEFAULT_LOOKBACK
    first_run_offset: timedelta | str | int = DEFAULT_FIRST_RUN_OFFSET
    max_tag_lag: timedelta | str | int = DEFAULT_MAX_TAG_LAG
    start_granularity: timedelta | str | int = DEFAULT_START_GRANULARITY
    tag_group_size: int = DEFAULT_SYNC_TAG_GROUP_SIZE

    def __post_init__(self) -> None:
        for name in ("lookback", "first_run_offset", "max_tag_lag", "start_granularity"):
            object.__setattr__(self, name, parse_duration(getattr(self, name), f"sync {name}"))
        size = self.tag_group_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_TAGS_PER_QUERY:
            raise ConfigurationError(
                f"Invalid sync tag_group_size {size!r}: use a whole number from 1 to {MAX_TAGS_PER_QUERY} "
                "(SQL Server accepts at most 2,100 parameters in one query)."
            )


@dataclass(frozen=True)
class TagState:
    """The live state row of one tag (the newest ``version`` wins)."""

    tag: str
    claim_start: datetime
    watermark: datetime | None
    last_seen: datetime | None
    status: str
    version: int
    run_id: str = ""


@dataclass(frozen=True)
class SyncGroup:
    """One source read: ``tags`` × ``[start, end)``."""

    start: datetime
    end: datetime
    tags: tuple[str, ...]


@dataclass(frozen=True)
class SyncPlan:
    """What one run reads. ``version`` is the version of its claim rows; its done rows use ``version + 1``."""

    horizon: datetime
    groups: tuple[SyncGroup, ...]
    starts: Mapping[str, datetime]
    version: int
    first_run: tuple[str, ...] = ()
    # Tags whose start was raised to their previous claim (the lookback or lag allowance grew
    # since): claims never go down, so a larger lookback takes effect as the watermark advances.
    held: tuple[str, ...] = ()
    # Tags whose start is not before the horizon (the clock went back): not read this run.
    skipped: tuple[str, ...] = ()
    previous: Mapping[str, TagState] = field(default_factory=dict)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(t for g in self.groups for t in g.tags)


def state_table_name(table: str) -> str:
    """The sync's state table beside the history ``table`` (same database)."""
    return check_identifier(f"{check_identifier(table)}{STATE_TABLE_SUFFIX}")


def sync_state_ddl(state_table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the state table: one live row per tag after merges; readers
    take the newest ``version`` per tag, so they are exact before merges too."""
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(state_table)}\n(\n"
        "    `TagName` String,\n"
        "    `claim_start` DateTime64(6, 'UTC'),\n"
        "    `watermark` Nullable(DateTime64(6, 'UTC')),\n"
        "    `last_seen` Nullable(DateTime64(6, 'UTC')),\n"
        "    `status` LowCardinality(String),\n"
        "    `version` UInt64,\n"
        "    `run_id` String,\n"
        "    `updated_at` DateTime64(6, 'UTC')\n"
        ")\nENGINE = ReplacingMergeTree(version)\nORDER BY TagName"
    )


def floor_to(instant: datetime, step: timedelta) -> datetime:
    """``instant`` rounded down to a multiple of ``step`` since the Unix epoch (UTC)."""
    return _EPOCH + ((instant - _EPOCH) // step) * step


def desired_start(state: TagState | None, horizon: datetime, options: SyncOptions) -> datetime:
    """Where a tag's window should start, before rounding and the monotone-claim rule."""
    if state is None:
        return horizon - options.first_run_offset
    if state.watermark is None:  # claimed, never completed: read the first window again
        return state.claim_start
    floor = state.watermark - options.max_tag_lag
    seen = state.last_seen if state.last_seen is not None and state.last_seen > floor else floor
    return seen - options.lookback


def plan_sync(
    tags: Iterable[str],
    states: Mapping[str, TagState],
    horizon: datetime | str,
    options: SyncOptions | None = None,
) -> SyncPlan:
    """The windows one run reads, grouped into source queries.

    Deterministic: tags are de-duplicated and sorted; groups are ordered by start, then tag name.

    :param tags: the tags to sync (discovery's list).
    :param states: the live state of (at least) these tags, by tag name; missing tags are new.
    :param horizon: the run's read instant; rows at or after it wait for the next run.
    """
    options = options or SyncOptions()
    horizon = to_utc(horizon, "sync horizon")
    names = sorted(set(tags))
    if not names:
        raise ConfigurationError(
            "No tags to sync: discovery returned none. Check TagRef and the sync's tag filters."
        )
    if not all(isinstance(t, str) and t for t in names):
        raise ConfigurationError(f"Tag names must be non-empty strings, got {names[:5]!r}.")
    starts: dict[str, datetime] = {}
    first, held, skipped = [], [], []
    for tag in names:
        state = states.get(tag)
        wanted = desired_start(state, horizon, options)
        start = floor_to(wanted, options.start_granularity)
        if state is None:
            first.append(tag)
        elif start < state.claim_start:
            start = state.claim_start  # claims only go up: that is what makes the fence sound
            if wanted < state.claim_start:
                held.append(tag)
        if start >= horizon:
            skipped.append(tag)
            continue
        starts[tag] = start
    by_start: dict[datetime, list[str]] = {}
    for tag in names:
        if tag in starts:
            by_start.setdefault(starts[tag], []).append(tag)
    size = options.tag_group_size
    groups = tuple(
        SyncGroup(start, horizon, tuple(members[i : i + size]))
        for start, members in sorted(by_start.items())
        for i in range(0, len(members), size)
    )
    version = 1 + max((s.version for s in states.values()), default=0)
    return SyncPlan(
        horizon=horizon,
        groups=groups,
        starts=starts,
        version=version,
        first_run=tuple(first),
        held=tuple(held),
        skipped=tuple(skipped),
        previous={t: states[t] for t in names if t in states},
    )


def claim_rows(plan: SyncPlan, run_id: str) -> list[TagState]:
    """The rows a run writes before it reads: the new claim, the previous watermark kept."""
    rows = []
    for tag, start in plan.starts.items():
        prev = plan.previous.get(tag)
        rows.append(
            TagState(
                tag=tag,
                claim_start=start,
                watermark=prev.watermark if prev else None,
                last_seen=prev.last_seen if prev else None,
                status=CLAIMED,
                version=plan.version,
                run_id=run_id,
            )
        )
    return rows


def done_rows(
    plan: SyncPlan, group: SyncGroup, last_seen: Mapping[str, datetime], run_id: str
) -> list[TagState]:
    """The rows a run writes once ``group`` is appended: watermark at the horizon, newest row seen."""
    rows = []
    for tag in group.tags:
        prev = plan.previous.get(tag)
        seen = _latest(prev.last_seen if prev else None, last_seen.get(tag))
        rows.append(
            TagState(
                tag=tag,
                claim_start=plan.starts[tag],
                watermark=_latest(prev.watermark if prev else None, plan.horizon),
                last_seen=seen,
                status=DONE,
                version=plan.version + 1,
                run_id=run_id,
            )
        )
    return rows


def fence_of(claims: Mapping[str, datetime], tags: Sequence[str]) -> datetime | None:
    """The lowest latest claim of ``tags``: the sync may write at or after it from now on.

    ``None`` when the sync has never claimed any of them: there is nothing to stay clear of.
    """
    found = [claims[t] for t in tags if t in claims]
    return min(found) if found else None


def clip_to_fence(
    start: datetime, end: datetime, fence: datetime | None
) -> tuple[datetime | None, str | None]:
    """A backfill chunk's window end under the sync's fence, and what to log about it.

    Returns ``(end, None)`` when the fence is not inside the window, ``(fence, message)`` when the
    window is cut at the fence, and ``(None, message)`` when it lies wholly at or above the fence
    (the sync owns those rows; the chunk writes nothing).
    """
    if fence is None or fence >= end:
        return end, None
    if fence <= start:
        return None, (
            f"the window {start.isoformat()} – {end.isoformat()} lies at or above the minute-level "
            f"sync's fence {fence.isoformat()}: the sync loads it, this chunk writes nothing"
        )
    return fence, (
        f"the window ends at the minute-level sync's fence {fence.isoformat()} instead of "
        f"{end.isoformat()}: the sync loads the rest"
    )


def lags(horizon: datetime, seen: Mapping[str, datetime | None]) -> dict[str, Any]:
    """How far the table is behind ``horizon``: each tag's lag is the horizon minus its newest row.

    ``oldest_seconds`` and ``oldest_tag`` name the tag furthest behind (the one to alert on: a tag
    that stopped sending shows here and nowhere else), ``freshest_seconds`` the tag closest to the
    horizon. Tags never seen have no lag; all ``None`` when no tag was ever seen.
    """
    known = {tag: s for tag, s in seen.items() if s is not None}
    if not known:
        return {"oldest_seconds": None, "oldest_tag": None, "freshest_seconds": None}
    oldest_tag = min(known, key=lambda tag: (known[tag], tag))
    return {
        "oldest_seconds": round((horizon - known[oldest_tag]).total_seconds(), 3),
        "oldest_tag": oldest_tag,
        "freshest_seconds": round((horizon - max(known.values())).total_seconds(), 3),
    }


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b
