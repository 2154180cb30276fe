"""`airflow backfill create` over SQL Server's wire: the scheduler, the execution API and task
processes that read the historian through pymssql.

The source is the TDS endpoint in front of the AVEVA Historian emulator (``tests/support``: no SQL
Server can run here), serving from this test process; each task process connects to it over TCP as
it would to a SQL Server. Three daily intervals, two runs at once, chunks whose windows start where
no value is stored (so the Historian makes initial values there): ClickHouse ends with exactly the
stored values of the three days, counted from the emulator's store.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

from airflow_backfill_provider.testing.counts import clickhouse_counts
from airflow_backfill_provider.testing.generation import SimulatorConfig
from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env
from tests.support.sqlserver import sqlserver_historian

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
JAN1, JAN3 = date(2025, 1, 1), date(2025, 1, 3)


def test_native_backfill_over_the_wire_is_exact(tmp_path):
    config = SimulatorConfig(
        start=datetime(2025, 1, 1),
        end=datetime(2025, 1, 4),
        tags=6,
        rate=300,
        seed=5,
        boundary_every=timedelta(days=1),
        hostile_tags=True,
    )
    with sqlserver_historian(tmp_path / "sqlserver", config) as historian:
        chdb_path = tmp_path / "chdb"
        stack = AirflowStack(
            home=tmp_path / "airflow",
            dags_folder=DAGS_FOLDER,
            parallelism=2,
            extra_env=wonderware_backfill_env(historian.connection(), chdb_path, JAN1, JAN3),
        )
        stack.prepare("wonderware_backfill")
        stack.cli(
            *backfill_args(
                "wonderware_backfill",
                JAN1,
                JAN3,
                max_active_runs=2,
                conf={"chunk_window": "PT9H", "tag_group_size": 4},
            )
        )
        with stack.running():
            runs = stack.wait_for_runs("wonderware_backfill", expected=3, timeout=420, want_all_success=True)
        assert {r["state"] for r in runs} == {"success"}

        stored = [
            (tag, at)
            for tag, at, *_ in historian.store.stored()
            if not tag.startswith("Sys") and at < datetime(2025, 1, 4)
        ]
        assert clickhouse_counts(chdb_path) == Counter(tag for tag, _ in stored)
        assert clickhouse_counts(chdb_path, by="day") == Counter(str(at.date()) for _, at in stored)
        # the chunks came over the wire, as Full retrievals that made initial values at their starts
        assert {q.mode for q in historian.emulator.history_queries} == {"Full"}
        assert historian.emulator.synthetic_rows >= 6
