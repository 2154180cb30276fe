"""AVEVA Historian's documented retrieval rules for the ``History`` extension table, over stored points.

A PostgreSQL or SQLite copy of ``History`` returns its stored rows as they are; the real Historian
does not. It answers a query by *retrieving* from its stored values, and what it returns depends on
the retrieval mode and on where the query starts. Each rule below cites the page of AVEVA's
documentation (docs.aveva.com, bundle ``sp-historian``) it follows, and has its own test in
``tests/unit/test_aveva_retrieval.py``:

* **Initial values (67304; Full: 67311).** With an inclusive start (``DateTime >= start``) and no
  stored value exactly on the start, the last earlier value is returned re-stamped to the start with
  ``Quality`` 133; with no earlier value, a NULL at the start with ``QualityDetail`` 65536,
  ``OPCQuality`` 0 and ``Quality`` 1. An exclusive start (``DateTime > start``) returns no initial
  value. No special final value is returned. Full mode handles initial values as Delta does.
* **Delta (67296, 67297, 67300).** Only changed values: a value equal to the previous row returned,
  which can be the initial value, is dropped (in page 67300's example a NULL after a NULL with the
  same QualityDetail is dropped too, so the comparison covers Value, VValue and QualityDetail).
* **Full (329511, 67296).** Every stored value.
* **Cyclic (72284, 72285).** ``wwCycleCount`` rows per tag spread evenly over the window (100 when
  neither ``wwCycleCount`` nor ``wwResolution`` is given), each the last stored value at or before its
  cycle boundary (stair-step; the Historian interpolates analog tags, which this emulator does not).
* **Start before the first history block (72348).** A NULL at the query start, then the stored
  values: the emulator's history begins with its first stored value, so this is the no-earlier-value
  case of the initial values rule.
* **Versions (72196, 72198).** ``wwVersion`` ``Latest`` (the default) returns the newest revision of a
  value, ``Original`` the value first stored. A revised value carries ``QualityDetail`` 202.
* **Quality (53682, 65400).** ``Quality`` 0 good, 1 bad, 16 doubtful (stored), 133 initial value
  (made by the query, never stored).
* **Time zone.** The query's instants and the returned ``DateTime`` are in ``wwTimeZone`` when the
  query sets it, else in the server's local time zone.

Pure Python over plain tuples: no database, no TDS. :mod:`tests.support.aveva.store` keeps the
stored points; :mod:`tests.support.aveva.tsql` turns a query's WHERE clause into a :class:`Request`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

QUALITY_GOOD, QUALITY_BAD, QUALITY_DOUBTFUL, QUALITY_INITIAL = 0, 1, 16, 133
QD_GOOD, QD_REVISED, QD_NO_DATA, QD_SNAPSHOT, QD_NULL_VALUE = 192, 202, 65536, 150, 249
DEFAULT_CYCLE_COUNT = 100
MODES = ("Delta", "Full", "Cyclic")
VERSIONS = ("Latest", "Original")
# Windows' zone names AVEVA accepts in wwTimeZone, mapped to IANA names; IANA names work as well.
WINDOWS_ZONES = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Pacific Standard Time": "America/Los_Angeles",
}


@dataclass(frozen=True)
class Point:
    """One stored value of a tag. ``time`` is an aware UTC datetime; ``revision`` 0 is the original."""

    time: datetime
    value: float | None
    vvalue: str | None
    quality: int
    quality_detail: int
    opc_quality: int
    revision: int = 0


@dataclass(frozen=True)
class Request:
    """What a History query asks the retrieval layer for (its WHERE clause's extension predicates).

    ``start``/``end`` are naive wall times in ``time_zone`` (None: the server's zone), as written in
    the query; ``None`` means the query has no such bound.
    """

    tags: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    start_inclusive: bool = True
    end_inclusive: bool = True
    mode: str = "Delta"  # the History table's default mode (67296)
    version: str = "Latest"
    time_zone: str | None = None
    cycle_count: int | None = None
    resolution_ms: int | None = None


@dataclass(frozen=True)
class Row:
    """One returned row: the stored point's fields as the query returns them, in the query's zone."""

    tag: str
    time: datetime  # naive wall time in the request's zone
    value: float | None
    vvalue: str | None
    quality: int
    quality_detail: int
    opc_quality: int
    stored_time: datetime  # naive, the stored point's own time (StartDateTime)


def zone(name: str | None, server_zone: str) -> ZoneInfo:
    """The ``ZoneInfo`` of a ``wwTimeZone`` value (Windows or IANA name), else the server's zone."""
    key = name or server_zone
    try:
        return ZoneInfo(WINDOWS_ZONES.get(key, key))
    except (KeyError, ValueError) as err:
        raise ValueError(f"Unknown wwTimeZone {key!r}") from err


def retrieval_bounds(request: Request, server_zone: str = "UTC") -> tuple[datetime | None, datetime | None]:
    """The request's window in UTC (None: unbounded); a Cyclic request reads its whole window too."""
    tz = zone(request.time_zone, server_zone)
    return tuple(  # type: ignore[return-value]
        None if t is None else t.replace(tzinfo=tz).astimezone(timezone.utc)
        for t in (request.start, request.end)
    )


def select_version(points: Sequence[Point], version: str) -> list[Point]:
    """One point per instant: the newest revision (``Latest``) or the original (``Original``) (72196)."""
    if version not in VERSIONS:
        raise ValueError(f"wwVersion {version!r} is not one of {VERSIONS}")
    chosen: dict[datetime, Point] = {}
    for p in points:
        have = chosen.get(p.time)
        if version == "Original":
            if p.revision == 0:
                chosen[p.time] = p
        elif have is None or p.revision > have.revision:
            chosen[p.time] = p
    return [chosen[t] for t in sorted(chosen)]


def retrieve(tag: str, points: Sequence[Point], request: Request, server_zone: str = "UTC") -> Iterator[Row]:
    """The rows the Historian returns for one tag: ``points`` are all stored points of the tag, any order."""
    tz = zone(request.time_zone, server_zone)

    def to_utc(wall: datetime) -> datetime:
        return wall.replace(tzinfo=tz).astimezone(timezone.utc)

    def row(p: Point, at: datetime | None = None, **changes) -> Row:
        local = (at or p.time).astimezone(tz).replace(tzinfo=None)
        fields = dict(
            tag=tag,
            time=local,
            value=p.value,
            vvalue=p.vvalue,
            quality=p.quality,
            quality_detail=p.quality_detail,
            opc_quality=p.opc_quality,
            stored_time=p.time.astimezone(tz).replace(tzinfo=None),
        )
        fields.update(changes)
        return Row(**fields)

    series = select_version(points, request.version)
    start = to_utc(request.start) if request.start is not None else None
    end = to_utc(request.end) if request.end is not None else None
    if request.mode == "Cyclic":
        yield from _cyclic(tag, series, start, end, request, row, tz)
        return
    if request.mode not in MODES:
        raise ValueError(f"wwRetrievalMode {request.mode!r} is not supported by this emulator ({MODES})")

    def inside(t: datetime) -> bool:
        if start is not None and (t < start or (t == start and not request.start_inclusive)):
            return False
        return end is None or t < end or (t == end and request.end_inclusive)

    out: list[Row] = []
    if start is not None and request.start_inclusive and not any(p.time == start for p in series):
        earlier = [p for p in series if p.time < start]
        if earlier:  # 67304: the last earlier value, re-stamped, Quality 133
            out.append(row(earlier[-1], at=start, quality=QUALITY_INITIAL))
        else:  # 67304 / 72348: nothing at or before the start
            out.append(_no_data(tag, start, tz))
    out += [row(p) for p in series if inside(p.time)]
    if request.mode == "Delta":
        out = list(_changes_only(out))
    yield from out


def _changes_only(rows: Sequence[Row]) -> Iterator[Row]:
    """Delta (67296, 67300): drop a row equal to the previous row returned."""
    previous = None
    for r in rows:
        key = (r.value, r.vvalue, r.quality_detail)
        if key != previous:
            yield r
        previous = key


def _cyclic(tag, series, start, end, request: Request, row, tz) -> Iterator[Row]:
    if start is None or end is None:
        raise ValueError("Cyclic retrieval needs a start and an end time")
    if request.resolution_ms:
        step = timedelta(milliseconds=request.resolution_ms)
        times = [start + step * i for i in range(int((end - start) / step) + 1)]
    else:  # cycle boundaries spread evenly, the first on the start and the last on the end
        count = request.cycle_count or DEFAULT_CYCLE_COUNT
        span = (end - start) // timedelta(microseconds=1)
        times = [start + timedelta(microseconds=span * i // max(count - 1, 1)) for i in range(count)]
    for t in times:
        earlier = [p for p in series if p.time <= t]
        if earlier:
            yield row(earlier[-1], at=t)
        else:
            yield _no_data(tag, t, tz)


def _no_data(tag: str, at: datetime, tz: ZoneInfo) -> Row:
    """67304: a NULL with QualityDetail 65536, OPCQuality 0 and Quality 1 where nothing is stored."""
    local = at.astimezone(tz).replace(tzinfo=None)
    return Row(tag, local, None, None, QUALITY_BAD, QD_NO_DATA, 0, local)
