"""Planning a backfill interval: tag selection, chunking and the run summary.

Pure functions with no Airflow import. A chunk is one (sub-window × tag group) unit of work; chunks
of one interval tile it exactly: every (tag, instant) in ``[start, end)`` belongs to exactly one
chunk, so deleting-and-reloading chunk by chunk reloads the interval exactly once.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import parse_duration, to_utc

# Airflow's default [core] max_map_length: a mapped task refuses more task instances than this.
DEFAULT_MAX_CHUNKS = 1024
# SQL Server takes at most 2,100 parameters per statement; a chunk's query binds one per tag plus a
# few for the window and options, so 2,000 tags leave room.
MAX_TAG_GROUP_SIZE = 2000


@dataclass(frozen=True)
class Chunk:
    """One unit of transfer work. ``window_start`` is inclusive, ``window_end`` exclusive."""

    chunk_id: str
    window_start: str
    window_end: str
    tags: tuple[str, ...]

    def as_kwargs(self) -> dict:
        """The operator kwargs for this chunk (JSON-serialisable, for ``expand_kwargs``)."""
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d


def select_tags(
    tags: Iterable[str],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> list[str]:
    """Filter tag names by glob patterns (case-insensitive, as SQL Server's default collation).

    A tag is kept if it matches any ``include`` pattern (all tags when ``include`` is empty) and no
    ``exclude`` pattern. Returns sorted, de-duplicated names.
    """
    inc = [p.casefold() for p in include or [] if p]
    exc = [p.casefold() for p in exclude or [] if p]
    kept = set()
    for tag in tags:
        t = tag.casefold()
        if inc and not any(fnmatch.fnmatchcase(t, p) for p in inc):
            continue
        if any(fnmatch.fnmatchcase(t, p) for p in exc):
            continue
        kept.add(tag)
    return sorted(kept)


def chunk_id(window_start: datetime, window_end: datetime, tags: Sequence[str]) -> str:
    """A deterministic id for a chunk: readable window plus a short hash of its tags."""
    digest = hashlib.sha1("\x1f".join(tags).encode()).hexdigest()[:8]
    return f"{window_start:%Y%m%dT%H%M%S}-{window_end:%Y%m%dT%H%M%S}-{digest}"


def check_chunking(window: str | int | timedelta, tag_group_size: int) -> tuple[timedelta, int]:
    """The chunk window as a duration and the tag group size, checked; raise ConfigurationError naming
    the bad value and the limit."""
    step = parse_duration(window, "chunk window")
    if isinstance(tag_group_size, bool) or not isinstance(tag_group_size, int) or tag_group_size < 1:
        raise ConfigurationError(f"Invalid tag_group_size {tag_group_size!r}: it must be a positive integer.")
    if tag_group_size > MAX_TAG_GROUP_SIZE:
        raise ConfigurationError(
            f"Invalid tag_group_size {tag_group_size}: at most {MAX_TAG_GROUP_SIZE} tags per chunk, because "
            "SQL Server accepts at most 2,100 parameters in one query. Use e.g. 500, or split the tags."
        )
    return step, tag_group_size


def plan_chunks(
    start: str | datetime,
    end: str | datetime,
    tags: Sequence[str],
    *,
    window: str | int | timedelta = "1d",
    tag_group_size: int = 50,
    max_chunks: int = DEFAULT_MAX_CHUNKS,
) -> list[Chunk]:
    """Split ``[start, end) × tags`` into chunks of at most ``window`` × ``tag_group_size`` tags.

    Deterministic: the same input always gives the same chunks in the same order (tags are sorted
    and de-duplicated first). The last sub-window is shortened to end exactly at ``end``.
    """
    start_dt, end_dt = to_utc(start, "start"), to_utc(end, "end")
    if end_dt <= start_dt:
        raise ConfigurationError(f"Empty or reversed interval: start {start_dt} is not before end {end_dt}.")
    step, tag_group_size = check_chunking(window, tag_group_size)
    names = sorted(set(tags))
    if not names:
        return []
    groups = [tuple(names[i : i + tag_group_size]) for i in range(0, len(names), tag_group_size)]
    windows = []
    cursor = start_dt
    while cursor < end_dt:
        nxt = min(cursor + step, end_dt)
        windows.append((cursor, nxt))
        cursor = nxt
    total = len(windows) * len(groups)
    if total > max_chunks:
        raise ConfigurationError(
            f"The plan has {total} chunks ({len(windows)} windows × {len(groups)} tag groups), more than "
            f"the limit of {max_chunks} mapped tasks. Use a larger chunk window or tag group size, or "
            "raise [core] max_map_length."
        )
    return [
        Chunk(chunk_id(ws, we, g), ws.isoformat(), we.isoformat(), g) for ws, we in windows for g in groups
    ]


@dataclass(frozen=True)
class RunSummary:
    chunks_total: int
    chunks_ok: int
    chunks_failed: int
    success_rate: float
    rows: int
    source_rows: int
    transfer_seconds: float
    duration_seconds: float
    rows_per_second: float
    failed_chunk_ids: tuple[str, ...]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["failed_chunk_ids"] = list(self.failed_chunk_ids)
        return d


def summarize(
    chunk_ids: Sequence[str], results: Iterable[dict | None], duration_seconds: float
) -> RunSummary:
    """Summarise a run from its planned chunk ids and the results of the chunks that succeeded.

    A chunk with no result (failed, upstream-failed or never run) counts as failed. An empty plan is a
    success with rate 1.0: nothing was due. ``rows`` counts rows written, ``source_rows`` rows read or,
    in a dry run, counted at the source: what the run loads, or would load.
    """
    by_id = {r["chunk_id"]: r for r in results if r and r.get("chunk_id")}
    ok = [by_id[c] for c in chunk_ids if c in by_id]
    failed = tuple(c for c in chunk_ids if c not in by_id)
    rows = sum(int(r.get("rows", 0)) for r in ok)
    source_rows = sum(int(r.get("source_rows", r.get("rows", 0))) for r in ok)
    transfer = sum(float(r.get("seconds", 0.0)) for r in ok)
    total = len(chunk_ids)
    return RunSummary(
        chunks_total=total,
        chunks_ok=len(ok),
        chunks_failed=len(failed),
        success_rate=round(len(ok) / total, 4) if total else 1.0,
        rows=rows,
        source_rows=source_rows,
        transfer_seconds=round(transfer, 3),
        duration_seconds=round(duration_seconds, 3),
        rows_per_second=round(rows / duration_seconds, 1) if duration_seconds > 0 else 0.0,
        failed_chunk_ids=failed,
    )


def resolve_window(
    range_start: str | None,
    range_end: str | None,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    *,
    default_interval: tuple[datetime, datetime] | None = None,
) -> tuple[datetime, datetime]:
    """The window a run works on: the explicit ``range_start``/``range_end`` Params if given, else
    the run's data interval, else ``default_interval`` (a manual run without a logical date has no
    data interval; the caller passes the one such a run covers). Raises ConfigurationError naming
    what is missing or wrong."""
    if range_start or range_end:
        if not (range_start and range_end):
            raise ConfigurationError(
                f"Set both range_start and range_end, or neither (got range_start={range_start!r}, "
                f"range_end={range_end!r})."
            )
        start, end = to_utc(range_start, "range_start"), to_utc(range_end, "range_end")
        if end <= start:
            raise ConfigurationError(
                f"range_end {range_end!r} is not after range_start {range_start!r}: the window is "
                "[range_start, range_end), end exclusive. Swap them, or set range_end later."
            )
        return start, end
    if data_interval_start is not None and data_interval_end is not None:
        start, end = to_utc(data_interval_start), to_utc(data_interval_end)
    elif default_interval is not None:
        start, end = to_utc(default_interval[0]), to_utc(default_interval[1])
    else:
        raise ConfigurationError(
            "This run has no data interval (a manual run without a logical date?). Trigger it with a "
            "logical date, or set the range_start and range_end Params."
        )
    if end <= start:
        raise ConfigurationError(
            f"Empty window {start.isoformat()} – {end.isoformat()}: the DAG needs an interval timetable "
            "(e.g. CronDataIntervalTimetable), or set range_start before range_end."
        )
    return start, end
