"""How old the newest rows of the history table are, overall or per tag: the seed's lag alert.

The SQL text, the two-step read and the lag arithmetic behind ``ClickHouseFreshnessSensor`` and its
trigger. No Airflow import: the client is anything with clickhouse-connect's ``query``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.utils import (
    batched,
    check_identifier,
    iso,
    quote_identifier,
    system_table_filter,
)

# The seed's alert fired when data was more than 5 minutes old.
DEFAULT_MAX_LAG = timedelta(minutes=5)
# Slightly stale data (under an hour) gets its exact lag from the first, pruned read.
DEFAULT_SEARCH_HORIZON = timedelta(hours=1)
# Stale tags a message names before it says "and N more"; an event or XCom carries no more either.
MAX_NAMED = 10
REQUIRED_COLUMNS = ("TagName", "DateTime")
# Tags per step-two query (one UNION ALL branch each), so a plant-wide outage stays a few queries.
FALLBACK_BATCH = 50
# A newest row further ahead of the checker's clock than this is reported as clock skew.
CLOCK_TOLERANCE = timedelta(minutes=1)

_SINCE = "DateTime >= {since:DateTime64(6, 'UTC')}"


class QueryClient(Protocol):
    """The part of a clickhouse-connect client the read needs."""

    def query(self, query: str, parameters: Mapping[str, Any] | None = None) -> Any: ...


def recent_sql(table: str, *, per_tag: bool) -> str:
    """Step one: the newest ``DateTime`` since ``{since}``, of the table (``max, count``) or per tag.

    ``DateTime >= {since}`` prunes partitions by their min/max index and, through the
    (TagName, DateTime) key, the granules of each tag older than ``since``.
    """
    name = quote_identifier(table)
    if per_tag:
        return (
            f"SELECT TagName, max(DateTime) FROM {name} WHERE TagName IN {{tags:Array(String)}} "
            f"AND {_SINCE} GROUP BY TagName"
        )
    return f"SELECT max(DateTime), count() FROM {name} WHERE {_SINCE}"


def table_newest_sql(table: str) -> str:
    """Step two, whole table: nothing but ``max`` and ``count``, which ClickHouse answers from the parts'
    metadata (its implicit min/max-count projection), reading rows only of parts with deleted rows."""
    return f"SELECT max(DateTime), count() FROM {quote_identifier(table)}"


def tags_newest_sql(table: str, count: int) -> str:
    """Step two, per tag: each tag's newest row, read backwards along the (TagName, DateTime) key
    and stopped after one row, so the cost is a granule per part, not the tag's history.
    Parameters ``{t0:String}`` … ``{t<count-1>:String}``."""
    name = quote_identifier(table)
    return " UNION ALL ".join(
        f"(SELECT TagName, DateTime FROM {name} WHERE TagName = {{t{i}:String}} "
        "ORDER BY TagName DESC, DateTime DESC LIMIT 1)"
        for i in range(count)
    )


def normalize_tags(value: Any) -> tuple[str, ...] | None:
    """Tags after rendering: ``None`` (the whole table), one name, or a list of names, de-duplicated."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ConfigurationError(
            f"Invalid tags {value!r:.200}: give a tag name or a non-empty list of tag names, or leave "
            "tags unset to check the newest row of the whole table."
        )
    bad = [t for t in names if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigurationError(f"Invalid tags {bad[:5]!r:.200}: every tag must be a non-empty string.")
    return tuple(dict.fromkeys(names))


def _human(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n) or "0s"


@dataclass(frozen=True)
class FreshnessReport:
    """One check: the newest row overall, or per tag, against ``max_lag`` at ``checked_at``.

    :param newest: overall mode: the table's newest ``DateTime`` (``None``: no rows);
        per-tag mode: ``{tag: newest or None}`` for every tag asked for.
    """

    table: str
    checked_at: datetime
    max_lag: timedelta
    newest: datetime | None | Mapping[str, datetime | None]

    @property
    def per_tag(self) -> bool:
        return isinstance(self.newest, Mapping)

    def _lag(self, newest: datetime | None) -> float | None:
        # A row stamped in the future counts as fresh: lag 0 (see ``future``).
        return None if newest is None else max(0.0, (self.checked_at - newest).total_seconds())

    @property
    def stale(self) -> dict[str, float | None]:
        """Per-tag mode: the tags older than ``max_lag``, with their lag (``None``: no rows at all)."""
        if not isinstance(self.newest, Mapping):
            return {}
        limit = self.max_lag.total_seconds()
        lags = {tag: self._lag(ts) for tag, ts in self.newest.items()}
        return {tag: lag for tag, lag in lags.items() if lag is None or lag > limit}

    @property
    def deciding(self) -> tuple[str | None, datetime | None]:
        """The tag (``None`` overall) and timestamp that decide: per tag, the oldest newest row."""
        if not isinstance(self.newest, Mapping):
            return None, self.newest
        missing = [t for t, ts in self.newest.items() if ts is None]
        if missing:
            return missing[0], None
        tag = min(self.newest, key=lambda t: self.newest[t])  # type: ignore[index]
        return tag, self.newest[tag]

    @property
    def lag_seconds(self) -> float | None:
        """The deciding lag in seconds, ``None`` when the table (or a tag) has no rows."""
        return self._lag(self.deciding[1])

    @property
    def fresh(self) -> bool:
        lag = self.lag_seconds
        return lag is not None and lag <= self.max_lag.total_seconds()

    @property
    def future(self) -> bool:
        newest = self.deciding[1]
        return newest is not None and newest > self.checked_at + CLOCK_TOLERANCE

    @property
    def message(self) -> str:
        """One line a person can read: table, newest timestamp, lag, threshold, stale tags."""
        limit = f"max_lag {_human(self.max_lag.total_seconds())}"
        tag, newest = self.deciding
        skew = " (newest row is in the future: check the historian's clock)" if self.future else ""
        if not isinstance(self.newest, Mapping):
            if newest is None:
                return f"{self.table} is stale: it holds no rows at all ({limit})."
            lag = self.lag_seconds or 0.0
            verdict = "fresh" if self.fresh else "stale"
            sign = "<=" if self.fresh else ">"
            return f"{self.table} is {verdict}: newest row {iso(newest)}, lag {_human(lag)} {sign} {limit}{skew}."
        total = len(self.newest)
        if self.fresh:
            return (
                f"{self.table} is fresh for all {total} tag(s): the oldest newest row is {tag}'s "
                f"{iso(newest)}, lag {_human(self.lag_seconds or 0.0)} <= {limit}{skew}."
            )
        stale = self.stale
        named = [
            f"{t} no rows" if lag is None else f"{t} lag {_human(lag)} (newest {iso(self.newest[t])})"
            for t, lag in list(stale.items())[:MAX_NAMED]
        ]
        more = f" and {len(stale) - MAX_NAMED} more" if len(stale) > MAX_NAMED else ""
        return (
            f"{self.table} is stale for {len(stale)} of {total} tag(s) ({limit}): {', '.join(named)}{more}."
        )

    def to_xcom(self) -> dict[str, Any]:
        """A small JSON-able summary (no per-tag list beyond the first stale ones)."""
        tag, newest = self.deciding
        lag = self.lag_seconds
        summary: dict[str, Any] = {
            "table": self.table,
            "fresh": self.fresh,
            "checked_at": iso(self.checked_at),
            "newest": iso(newest),
            "lag_seconds": None if lag is None else round(lag, 3),
            "max_lag_seconds": self.max_lag.total_seconds(),
        }
        if isinstance(self.newest, Mapping):
            stale = self.stale
            summary.update(
                tags=len(self.newest),
                oldest_tag=tag,
                stale_count=len(stale),
                stale={
                    t: None if lag is None else round(lag, 3) for t, lag in list(stale.items())[:MAX_NAMED]
                },
            )
        return summary


def read_freshness(
    client: QueryClient,
    *,
    table: str,
    tags: Sequence[str] | None,
    max_lag: timedelta,
    search_horizon: timedelta = DEFAULT_SEARCH_HORIZON,
    now: datetime | None = None,
) -> FreshnessReport:
    """Read the newest row overall, or per tag, in two steps, and judge it against ``max_lag``.

    Step one looks back ``max(max_lag, search_horizon)`` only, which settles the verdict (the bound
    is at least ``max_lag``); step two, only for what step one did not find (the table, or tags,
    older than the bound), finds the exact newest row for the message.
    """
    check_identifier(table)
    now = now or datetime.now(timezone.utc)
    since = now - max(max_lag, search_horizon)
    try:
        if tags is None:
            newest, count = _one(client, recent_sql(table, per_tag=False), {"since": since})
            if not count:
                newest, count = _one(client, table_newest_sql(table), {})
            return FreshnessReport(table, now, max_lag, newest if count else None)
        found = _rows(client, recent_sql(table, per_tag=True), {"tags": list(tags), "since": since})
        missing = [t for t in tags if t not in found]
        for batch in batched(missing, FALLBACK_BATCH):
            params = {f"t{i}": tag for i, tag in enumerate(batch)}
            found.update(_rows(client, tags_newest_sql(table, len(batch)), params))
        return FreshnessReport(table, now, max_lag, {t: found.get(t) for t in tags})
    except Exception as err:
        # Say what is wrong with the table when that is the cause; any other error stays as it is.
        try:
            problem = _table_problem(client, table)
        except Exception:
            problem = None
        if problem:
            raise ConfigurationError(problem) from err
        raise


def _one(client: QueryClient, sql: str, params: Mapping[str, Any]) -> tuple[datetime | None, int]:
    newest, count = client.query(sql, parameters=params).result_rows[0]
    return (_utc(newest) if count else None), int(count)


def _rows(client: QueryClient, sql: str, params: Mapping[str, Any]) -> dict[str, datetime | None]:
    return {str(tag): _utc(ts) for tag, ts in client.query(sql, parameters=params).result_rows}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _table_problem(client: QueryClient, table: str) -> str | None:
    """What makes ``table`` unusable (missing, or without TagName/DateTime), or ``None``."""
    where, params = system_table_filter(table)
    rows = client.query(f"SELECT name FROM system.columns WHERE {where}", parameters=params).result_rows
    columns = {r[0] for r in rows}
    if not columns:
        return (
            f"ClickHouse table {table!r} does not exist. Check the sensor's table (and the connection's "
            "database), or load the history first: wonderware_backfill creates the table."
        )
    lacking = [c for c in REQUIRED_COLUMNS if c not in columns]
    if lacking:
        return (
            f"ClickHouse table {table!r} has no column {', '.join(lacking)}: the freshness check needs "
            "a history table with TagName and DateTime, like the one wonderware_backfill creates."
        )
    return None
