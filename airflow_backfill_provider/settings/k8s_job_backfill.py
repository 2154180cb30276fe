"""Deployment settings of the ``k8s_job_backfill`` DAG (documented in docs/kubernetes.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from airflow_backfill_provider.kubernetes.config import Defaults
from airflow_backfill_provider.kubernetes.logs import DEFAULT_PATTERN
from airflow_backfill_provider.settings.env import EnvReader

START_DATE_VARIABLE = "K8S_JOB_BACKFILL_START_DATE"


def _default_tracking_path(environ: Mapping[str, str]) -> str:
    home = environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return f"file://{home}/k8s_job_backfill"


@dataclass(frozen=True)
class K8sJobBackfillSettings:
    """What a deployment sets through ``K8S_JOB_BACKFILL_*``.

    Safe by default, like the other DAGs: without ``K8S_JOB_BACKFILL_START_DATE`` there is no
    catchup, and the runs the scheduler makes create no Job and say why; manual runs and
    ``airflow backfill create`` do. The clusters and customers are not settings: they are read at
    run time (Params, a file, an Airflow Variable), so parsing the DAG file touches nothing.
    """

    schedule: str = "@daily"
    start_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 1
    max_parallel_jobs: int = 16
    config_variable: str = "k8s_job_backfill_config"
    config_file: str | None = None
    defaults: Defaults = Defaults()
    start_env: str = "REINDEX_START_TIME"
    end_env: str = "REINDEX_END_TIME"
    customers_env: str = "RUN_ONLY_FOR_CUSTOMER_IDS"
    log_pattern: str = DEFAULT_PATTERN
    wait_for_jobs: bool = False
    poll_interval: timedelta = timedelta(seconds=30)
    log_timeout: timedelta = timedelta(minutes=10)
    wait_timeout: timedelta = timedelta(days=2)
    tracking_path: str = ""
    retries: int = 2
    retry_delay: timedelta = timedelta(seconds=30)

    @property
    def scheduled_runs(self) -> bool:
        """Whether runs of type ``scheduled`` create Jobs: only once a start date is set."""
        return self.start_date is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> K8sJobBackfillSettings:
        """Read and check the variables; raise :class:`ConfigurationError` naming the first bad one."""
        env = EnvReader(environ)
        start_date = env.date(START_DATE_VARIABLE, cls.start_date)
        d = Defaults()
        return cls(
            schedule=env.cron("K8S_JOB_BACKFILL_SCHEDULE", cls.schedule),
            start_date=start_date,
            # Off unless asked for: a catchup would create Jobs for every missed interval.
            catchup=env.catchup(
                "K8S_JOB_BACKFILL_CATCHUP",
                start_name=START_DATE_VARIABLE,
                start_date=start_date,
                default=False,
            ),
            max_active_runs=env.integer("K8S_JOB_BACKFILL_MAX_ACTIVE_RUNS", cls.max_active_runs, minimum=1),
            max_parallel_jobs=env.integer(
                "K8S_JOB_BACKFILL_MAX_PARALLEL_JOBS", cls.max_parallel_jobs, minimum=1
            ),
            config_variable=env.text("K8S_JOB_BACKFILL_CONFIG_VARIABLE", cls.config_variable),
            config_file=env.optional_text("K8S_JOB_BACKFILL_CONFIG_FILE"),
            defaults=Defaults(
                namespace=env.optional_text("K8S_JOB_BACKFILL_NAMESPACE"),
                cronjob=env.text("K8S_JOB_BACKFILL_CRONJOB", d.cronjob),
                container=env.optional_text("K8S_JOB_BACKFILL_CONTAINER"),
                temporal_namespace=env.text("K8S_JOB_BACKFILL_TEMPORAL_NAMESPACE", d.temporal_namespace),
            ),
            start_env=env.text("K8S_JOB_BACKFILL_START_ENV", cls.start_env),
            end_env=env.text("K8S_JOB_BACKFILL_END_ENV", cls.end_env),
            customers_env=env.text("K8S_JOB_BACKFILL_CUSTOMERS_ENV", cls.customers_env),
            log_pattern=env.text("K8S_JOB_BACKFILL_LOG_PATTERN", cls.log_pattern),
            wait_for_jobs=bool(env.optional_boolean("K8S_JOB_BACKFILL_WAIT_FOR_JOBS")),
            poll_interval=env.duration("K8S_JOB_BACKFILL_POLL_INTERVAL", cls.poll_interval),
            log_timeout=env.duration("K8S_JOB_BACKFILL_LOG_TIMEOUT", cls.log_timeout),
            wait_timeout=env.duration("K8S_JOB_BACKFILL_WAIT_TIMEOUT", cls.wait_timeout),
            tracking_path=env.text("K8S_JOB_BACKFILL_TRACKING_PATH", _default_tracking_path(environ)),
            retries=env.integer("K8S_JOB_BACKFILL_RETRIES", cls.retries, minimum=0),
            retry_delay=env.duration("K8S_JOB_BACKFILL_RETRY_DELAY", cls.retry_delay, allow_zero=True),
        )
