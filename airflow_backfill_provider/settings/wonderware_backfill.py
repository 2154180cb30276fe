"""Deployment settings of the ``wonderware_backfill`` DAG (documented in docs/wonderware-backfill.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES, column_names, history_columns
from airflow_backfill_provider.settings.env import EnvReader

START_DATE_VARIABLE = "WONDERWARE_BACKFILL_START_DATE"
COLUMNS_VARIABLE = "WONDERWARE_HISTORY_COLUMNS"


@dataclass(frozen=True)
class WonderwareBackfillSettings:
    """What a deployment sets through ``WONDERWARE_BACKFILL_*`` and the connection-id variables.

    Safe by default: without ``WONDERWARE_BACKFILL_START_DATE`` there is no catchup and the runs the
    scheduler makes (run type ``scheduled``) load nothing and say why; manual runs and backfills
    load. Setting the start date is the explicit act that turns scheduled loads and catchup on.
    """

    schedule: str = "@daily"
    start_date: datetime | None = None
    end_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 4
    table: str = "WonderwareHistory"
    retries: int = 3
    retry_delay: timedelta = timedelta(seconds=30)
    wonderware_conn_id: str = "wonderware_default"
    clickhouse_conn_id: str = "clickhouse_default"
    # The Airflow pool of the fetch_insert chunks (WONDERWARE_BACKFILL_POOL; None: default_pool): its
    # slots cap the historian sessions of every backfill at once. Airflow must already have it.
    pool: str | None = None
    # The History columns loaded, in schema order (WONDERWARE_HISTORY_COLUMNS; default all 33).
    history_columns: tuple[str, ...] = HISTORY_COLUMN_NAMES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WonderwareBackfillSettings:
        """Read and check the variables; raise :class:`ConfigurationError` naming the first bad one."""
        env = EnvReader(environ)
        start_date = env.date(START_DATE_VARIABLE, cls.start_date)
        settings = cls(
            schedule=env.cron("WONDERWARE_BACKFILL_SCHEDULE", cls.schedule),
            start_date=start_date,
            end_date=env.date("WONDERWARE_BACKFILL_END_DATE", cls.end_date),
            # Setting the start date is the explicit act that turns catchup on.
            catchup=env.catchup(
                "WONDERWARE_BACKFILL_CATCHUP",
                start_name=START_DATE_VARIABLE,
                start_date=start_date,
                default=start_date is not None,
            ),
            max_active_runs=env.integer(
                "WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", cls.max_active_runs, minimum=1
            ),
            table=env.identifier("WONDERWARE_BACKFILL_TABLE", cls.table),
            retries=env.integer("WONDERWARE_BACKFILL_RETRIES", cls.retries, minimum=0),
            retry_delay=env.duration("WONDERWARE_BACKFILL_RETRY_DELAY", cls.retry_delay, allow_zero=True),
            wonderware_conn_id=env.text("WONDERWARE_CONN_ID", cls.wonderware_conn_id),
            clickhouse_conn_id=env.text("CLICKHOUSE_CONN_ID", cls.clickhouse_conn_id),
            pool=env.optional_text("WONDERWARE_BACKFILL_POOL"),
            history_columns=read_history_columns(env),
        )
        start, end = settings.start_date, settings.end_date
        if start is not None and end is not None and end < start:
            raise ConfigurationError(
                f"WONDERWARE_BACKFILL_END_DATE {end.isoformat()} is before "
                f"{START_DATE_VARIABLE} {start.isoformat()}: set it later, or unset it."
            )
        return settings

    @property
    def all_history_columns(self) -> bool:
        """Whether every History column is loaded (the default)."""
        return self.history_columns == HISTORY_COLUMN_NAMES

    @property
    def scheduled_loads(self) -> bool:
        """Whether runs of type ``scheduled`` load: only once a start date says where history begins."""
        return self.start_date is not None

    @property
    def asset_name(self) -> str:
        """Name of the asset that downstream DAGs schedule on: one per target table."""
        return f"clickhouse_{self.table}"

    @property
    def asset_uri(self) -> str:
        return f"clickhouse://{self.clickhouse_conn_id}/{self.table}"


def read_history_columns(env: EnvReader) -> tuple[str, ...]:
    """``WONDERWARE_HISTORY_COLUMNS`` as checked column names in schema order (all 33 when unset or
    empty); a bad value raises naming the variable and the value. Shared by the DAGs that load History."""
    try:
        return column_names(history_columns(env.name_list(COLUMNS_VARIABLE)))
    except ConfigurationError as err:
        raise ConfigurationError(
            f"{COLUMNS_VARIABLE}={env.optional_text(COLUMNS_VARIABLE)!r}: {err} Set comma-separated History column "
            "names, or unset it to load all 33."
        ) from err
