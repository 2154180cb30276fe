"""Wait, in the triggerer, until the ClickHouse history table holds fresh data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.freshness import (
    DEFAULT_SEARCH_HORIZON,
    FreshnessReport,
    read_freshness,
)
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE
from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
from airflow_backfill_provider.utils import to_utc


def check_freshness(
    hook: ClickHouseBackfillHook,
    *,
    table: str,
    tags: Sequence[str] | None,
    max_lag: timedelta,
    search_horizon: timedelta = DEFAULT_SEARCH_HORIZON,
) -> FreshnessReport:
    """One freshness check in one session (in embedded mode the lock is held for this check only)."""
    try:
        with hook.session() as client:
            return read_freshness(
                client, table=table, tags=tags, max_lag=max_lag, search_horizon=search_horizon
            )
    except ConfigurationError as err:
        raise ConfigurationError(f"{hook.where}: {err}") from err


class ClickHouseFreshnessTrigger(BaseTrigger):
    """
    Fire once the newest row of ``table`` (overall, or of every tag in ``tags``) is at most
    ``max_lag_seconds`` old, or once ``deadline`` has passed.

    The event is ``{"status": "success"|"error", "message", "reason", "table", "tags", "report"}``:
    ``report`` is the last check's summary (newest, lag_seconds, stale tags); ``reason`` on an error
    is ``"timeout"`` (still stale at the deadline), ``"configuration"`` (no such table, bad input)
    or ``"error"`` (anything else, e.g. ClickHouse unreachable). Checks are read-only, so the
    trigger may run more than once; the deadline is absolute, so a rerun keeps it.

    :param table: the history table, ``table`` or ``database.table``.
    :param clickhouse_conn_id: Airflow connection of type ``clickhouse``.
    :param tags: tag names that must each be fresh; ``None`` checks the whole table's newest row.
    :param max_lag_seconds: the threshold.
    :param search_horizon_seconds: how far back the first, pruned read looks (at least the threshold).
    :param poll_interval: seconds between checks.
    :param deadline: ISO 8601 instant after which a stale table ends in an error event.
    """

    def __init__(
        self,
        *,
        table: str = DEFAULT_TABLE,
        clickhouse_conn_id: str = ClickHouseBackfillHook.default_conn_name,
        tags: Sequence[str] | None = None,
        max_lag_seconds: float,
        search_horizon_seconds: float = DEFAULT_SEARCH_HORIZON.total_seconds(),
        poll_interval: float = 60.0,
        deadline: str | None = None,
    ) -> None:
        super().__init__()
        self.table = table
        self.clickhouse_conn_id = clickhouse_conn_id
        self.tags = None if tags is None else list(tags)
        self.max_lag_seconds = float(max_lag_seconds)
        self.search_horizon_seconds = float(search_horizon_seconds)
        self.poll_interval = float(poll_interval)
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "table": self.table,
                "clickhouse_conn_id": self.clickhouse_conn_id,
                "tags": None if self.tags is None else list(self.tags),
                "max_lag_seconds": self.max_lag_seconds,
                "search_horizon_seconds": self.search_horizon_seconds,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    def _check(self, hook: ClickHouseBackfillHook) -> FreshnessReport:
        return check_freshness(
            hook,
            table=self.table,
            tags=self.tags,
            max_lag=timedelta(seconds=self.max_lag_seconds),
            search_horizon=timedelta(seconds=self.search_horizon_seconds),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ids = {"table": self.table, "tags": self.tags}
        try:
            deadline = to_utc(self.deadline, "deadline") if self.deadline else None
            hook = ClickHouseBackfillHook(clickhouse_conn_id=self.clickhouse_conn_id)
            while True:
                # In a thread: the engine call blocks, and in embedded mode so does waiting for its lock.
                report = await asyncio.to_thread(self._check, hook)
                if report.fresh:
                    self.log.info("%s", report.message)
                    yield TriggerEvent(
                        {**ids, "status": "success", "message": report.message, "report": report.to_xcom()}
                    )
                    return
                now = datetime.now(timezone.utc)
                if deadline is not None and now >= deadline:
                    yield TriggerEvent(
                        {
                            **ids,
                            "status": "error",
                            "reason": "timeout",
                            "message": f"Still stale at the deadline {deadline.isoformat()}: {report.message}",
                            "report": report.to_xcom(),
                        }
                    )
                    return
                wait = self.poll_interval
                if deadline is not None:
                    wait = min(wait, (deadline - now).total_seconds())
                self.log.info("%s Next check in %.0fs.", report.message, wait)
                await asyncio.sleep(wait)
        except ConfigurationError as err:
            yield TriggerEvent({**ids, "status": "error", "reason": "configuration", "message": str(err)})
        except Exception as err:
            # Any other exception becomes an error event, so the task fails with the reason in its log.
            yield TriggerEvent(
                {**ids, "status": "error", "reason": "error", "message": f"{type(err).__name__}: {err}"}
            )
