"""Wait until the ClickHouse history table holds fresh data: the seed's 5-minute lag alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.historian.freshness import (
    DEFAULT_MAX_LAG,
    DEFAULT_SEARCH_HORIZON,
    FreshnessReport,
    normalize_tags,
)
from airflow_backfill_provider.historian.schema import DEFAULT_TABLE
from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook
from airflow_backfill_provider.triggers.clickhouse import ClickHouseFreshnessTrigger, check_freshness
from airflow_backfill_provider.utils import check_identifier, iso, parse_duration

if TYPE_CHECKING:
    from airflow.sdk import Context

# The deferral's own timeout comes this long after the trigger's deadline, so the trigger's error
# event (which names the stale tags) arrives first and Airflow's generic timeout is only a backstop.
DEFERRAL_GRACE = timedelta(minutes=1)


class ClickHouseFreshnessSensor(BaseSensorOperator):
    """
    Succeed when the newest data in the history table is at most ``max_lag`` old.

    Without ``tags`` the newest row of the whole table counts; with ``tags`` every given tag must be
    fresh (a tag with no rows is stale), and a failure names each stale tag with its lag. Works in
    ``poke`` and ``reschedule`` modes and, with ``deferrable=True``, checks once and then waits in
    the triggerer. The return value (XCom) is the last check's summary: ``newest``,
    ``lag_seconds``, ``max_lag_seconds`` and, per tag, the oldest tag and the stale ones.

    Each check reads only recent data: see docs/freshness-sensor.md.

    :param clickhouse_conn_id: Airflow connection of type ``clickhouse`` (server or ``chdb_path``).
    :param table: the history table, ``table`` or ``database.table``. (templated)
    :param tags: a tag name or a list of tag names that must each be fresh; unset checks the
        whole table. (templated)
    :param max_lag: the threshold: a timedelta, seconds, or a duration such as ``"5m"``.
    :param search_horizon: how far back the first, pruned read looks (at least ``max_lag``);
        anything older is found by a second read through the index.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("table", "tags")
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        clickhouse_conn_id: str = ClickHouseBackfillHook.default_conn_name,
        table: str = DEFAULT_TABLE,
        tags: str | Sequence[str] | None = None,
        max_lag: timedelta | str | float = DEFAULT_MAX_LAG,
        search_horizon: timedelta | str | float = DEFAULT_SEARCH_HORIZON,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.clickhouse_conn_id = clickhouse_conn_id
        self.table = table
        self.tags = tags
        # Not templated: a bad duration fails when the DAG is parsed, naming the value.
        self.max_lag = parse_duration(max_lag, f"max_lag of {self.task_id}")
        self.search_horizon = parse_duration(search_horizon, f"search_horizon of {self.task_id}")
        self.deferrable = deferrable
        self._last: FreshnessReport | None = None

    def _rendered(self) -> tuple[str, tuple[str, ...] | None]:
        """``table`` and ``tags`` as rendered, checked (raises ConfigurationError naming the value)."""
        return check_identifier(self.table, "table"), normalize_tags(self.tags)

    def _check(self) -> FreshnessReport:
        with fail_without_retry():
            table, tags = self._rendered()
            report = check_freshness(
                ClickHouseBackfillHook(clickhouse_conn_id=self.clickhouse_conn_id),
                table=table,
                tags=tags,
                max_lag=self.max_lag,
                search_horizon=self.search_horizon,
            )
        self._last = report
        return report

    def poke(self, context: Context) -> bool | PokeReturnValue:
        report = self._check()
        if report.fresh:
            self.log.info("%s", report.message)
            return PokeReturnValue(is_done=True, xcom_value=report.to_xcom())
        self.log.info("Waiting: %s", report.message)
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:
                # The base class says only how long it waited; add what was still stale.
                last = f" Last check: {self._last.message}" if self._last else ""
                raise AirflowSensorTimeout(f"{err}{last}") from err
        # Check once first: fresh data needs no trip through the triggerer.
        try:
            done = self.poke(context)
        except AirflowFailException:
            if self.soft_fail:
                raise AirflowSkipException(
                    "Skipping: the freshness check is misconfigured and soft_fail is set"
                ) from None
            raise
        if done:
            return done.xcom_value
        table, tags = self._rendered()
        deadline = datetime.now(timezone.utc) + timedelta(seconds=self.timeout)
        self.defer(
            trigger=ClickHouseFreshnessTrigger(
                table=table,
                clickhouse_conn_id=self.clickhouse_conn_id,
                tags=None if tags is None else list(tags),
                max_lag_seconds=self.max_lag.total_seconds(),
                search_horizon_seconds=self.search_horizon.total_seconds(),
                poll_interval=self.poke_interval,
                deadline=iso(deadline),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") == "success":
            self.log.info("%s", event.get("message"))
            return event["report"]
        reason, message = event.get("reason"), event.get("message")
        if reason == "timeout":
            raise AirflowSensorTimeout(f"Sensor timed out after {self.timeout:.0f}s. {message}")
        if reason == "configuration":
            raise AirflowFailException(message)
        # The check itself failed (ClickHouse unreachable, say): a retry may help.
        raise AirflowException(f"Checking the freshness of {event.get('table')} failed: {message}")
