"""Deployment settings of the ``missing_workflow_backfill`` DAG (documented in docs/missing-workflow-backfill.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_backfill_provider.settings.env import EnvReader


@dataclass(frozen=True)
class MissingWorkflowBackfillSettings:
    """What a deployment sets through ``MISSING_WORKFLOW_BACKFILL_*`` and the connection-id variables.

    The spec itself is not a setting: it is read at run time (Param, file, Airflow Variable), so the
    DAG file's parse never touches the metadata database. No start date by default: a run of any
    date runs its tasks (Airflow runs no task of a manual run dated before a DAG's start date).
    """

    schedule: str = "@daily"
    start_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 1
    settle: timedelta | None = timedelta(hours=1)
    spec_variable: str = "missing_workflow_backfill_spec"
    spec_file: str | None = None
    table: str = "backfill_requests"
    temporal_conn_id: str = "temporal_default"
    clickhouse_conn_id: str = "clickhouse_default"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MissingWorkflowBackfillSettings:
        """Read and check the variables; raise :class:`ConfigurationError` naming the first bad one."""
        env = EnvReader(environ)
        start_date = env.date("MISSING_WORKFLOW_BACKFILL_START_DATE", cls.start_date)
        return cls(
            schedule=env.cron("MISSING_WORKFLOW_BACKFILL_SCHEDULE", cls.schedule),
            start_date=start_date,
            # Off unless asked for: a catchup would start real workflows for every missed interval.
            catchup=env.catchup(
                "MISSING_WORKFLOW_BACKFILL_CATCHUP",
                start_name="MISSING_WORKFLOW_BACKFILL_START_DATE",
                start_date=start_date,
                default=False,
            ),
            max_active_runs=env.integer(
                "MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS", cls.max_active_runs, minimum=1
            ),
            settle=env.optional_duration("MISSING_WORKFLOW_BACKFILL_SETTLE", cls.settle),
            spec_variable=env.text("MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE", cls.spec_variable),
            spec_file=env.optional_text("MISSING_WORKFLOW_BACKFILL_SPEC_FILE"),
            table=env.identifier("MISSING_WORKFLOW_BACKFILL_TABLE", cls.table),
            temporal_conn_id=env.text("TEMPORAL_CONN_ID", cls.temporal_conn_id),
            clickhouse_conn_id=env.text("CLICKHOUSE_CONN_ID", cls.clickhouse_conn_id),
        )
