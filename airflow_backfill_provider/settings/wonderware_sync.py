"""Deployment settings of the ``wonderware_sync`` DAG (documented in docs/sync.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.schema import DEFAULT_TAG_TYPES, HISTORY_COLUMN_NAMES, TAG_TYPES
from airflow_backfill_provider.historian.sync import (
    DEFAULT_FIRST_RUN_OFFSET,
    DEFAULT_LOOKBACK,
    DEFAULT_MAX_TAG_LAG,
    SyncOptions,
)
from airflow_backfill_provider.settings.env import EnvReader
from airflow_backfill_provider.settings.wonderware_backfill import (
    START_DATE_VARIABLE,
    WonderwareBackfillSettings,
)

RETROACTIVE_VARIABLE = "WONDERWARE_SYNC_RETROACTIVE"
HISTORY_START_VARIABLE = "WONDERWARE_SYNC_HISTORY_START"


@dataclass(frozen=True)
class WonderwareSyncSettings:
    """What a deployment sets through ``WONDERWARE_SYNC_*`` (and the variables it shares with
    ``wonderware_backfill``: the table, the connection ids and ``WONDERWARE_BACKFILL_START_DATE``).

    The sync writes into ``wonderware_backfill``'s table, so the two share one setting for it, and
    the retroactive backfill runs ``wonderware_backfill`` itself.
    """

    schedule: str = "* * * * *"
    table: str = "WonderwareHistory"
    tag_types: tuple[str, ...] = DEFAULT_TAG_TYPES
    lookback: timedelta = DEFAULT_LOOKBACK
    first_run_offset: timedelta = DEFAULT_FIRST_RUN_OFFSET
    max_tag_lag: timedelta = DEFAULT_MAX_TAG_LAG
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=10)
    wonderware_conn_id: str = "wonderware_default"
    clickhouse_conn_id: str = "clickhouse_default"
    redis_conn_id: str = "redis_default"
    # None: no cache (TTL 0 or off); the tag list is read from TagRef every run.
    tag_cache_ttl: timedelta | None = timedelta(hours=1)
    tag_cache_key: str = "airflow-backfill-provider:wonderware_sync:tags"
    retroactive: bool = False
    history_start: datetime | None = None
    airflow_api_conn_id: str = "airflow_api_default"
    backfill_dag_id: str = "wonderware_backfill"
    # wonderware_backfill's WONDERWARE_BACKFILL_SCHEDULE: a reload covers its whole intervals.
    backfill_schedule: str = "@daily"
    backfill_max_active_runs: int = 2
    # wonderware_backfill's WONDERWARE_HISTORY_COLUMNS: the sync loads the same columns.
    history_columns: tuple[str, ...] = HISTORY_COLUMN_NAMES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WonderwareSyncSettings:
        """Read and check the variables; raise :class:`ConfigurationError` naming the first bad one."""
        env = EnvReader(environ)
        backfill = WonderwareBackfillSettings.from_env(environ)
        retroactive = bool(env.optional_boolean(RETROACTIVE_VARIABLE))
        history_start = env.date(HISTORY_START_VARIABLE, backfill.start_date)
        if retroactive and history_start is None:
            raise ConfigurationError(
                f"{RETROACTIVE_VARIABLE} is on but neither {HISTORY_START_VARIABLE} nor "
                f"{START_DATE_VARIABLE} is set: the retroactive backfill loads a new tag's history from "
                f"that instant. Set {HISTORY_START_VARIABLE} (e.g. 2025-01-01), or turn "
                f"{RETROACTIVE_VARIABLE} off."
            )
        return cls(
            schedule=env.cron("WONDERWARE_SYNC_SCHEDULE", cls.schedule),
            table=backfill.table,
            tag_types=env.choices("WONDERWARE_SYNC_TAG_TYPES", cls.tag_types, tuple(TAG_TYPES)),
            lookback=env.duration("WONDERWARE_SYNC_LOOKBACK", cls.lookback),
            first_run_offset=env.duration("WONDERWARE_SYNC_FIRST_RUN_OFFSET", cls.first_run_offset),
            max_tag_lag=env.duration("WONDERWARE_SYNC_MAX_TAG_LAG", cls.max_tag_lag),
            retries=env.integer("WONDERWARE_SYNC_RETRIES", cls.retries, minimum=0),
            retry_delay=env.duration("WONDERWARE_SYNC_RETRY_DELAY", cls.retry_delay, allow_zero=True),
            wonderware_conn_id=backfill.wonderware_conn_id,
            clickhouse_conn_id=backfill.clickhouse_conn_id,
            redis_conn_id=env.text("REDIS_CONN_ID", cls.redis_conn_id),
            tag_cache_ttl=env.optional_duration("WONDERWARE_SYNC_TAG_CACHE_TTL", cls.tag_cache_ttl),
            tag_cache_key=env.text("WONDERWARE_SYNC_TAG_CACHE_KEY", cls.tag_cache_key),
            retroactive=retroactive,
            history_start=history_start,
            airflow_api_conn_id=env.text("AIRFLOW_API_CONN_ID", cls.airflow_api_conn_id),
            backfill_max_active_runs=env.integer(
                "WONDERWARE_SYNC_BACKFILL_MAX_ACTIVE_RUNS", cls.backfill_max_active_runs, minimum=1
            ),
            history_columns=backfill.history_columns,
            backfill_schedule=backfill.schedule,
        )

    @property
    def options(self) -> SyncOptions:
        """The sync core's options."""
        return SyncOptions(
            lookback=self.lookback, first_run_offset=self.first_run_offset, max_tag_lag=self.max_tag_lag
        )
