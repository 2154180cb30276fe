"""Fixtures for DAG runs: a simulated historian in PostgreSQL and an embedded ClickHouse target.

The DAG files read their deployment settings from the environment at parse time, so the fast retry
settings the tests need are set here, before any DagBag parses them.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import pytest

os.environ["WONDERWARE_BACKFILL_RETRIES"] = "1"
os.environ["WONDERWARE_BACKFILL_RETRY_DELAY"] = "1"

DAGS_FOLDER = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DAGS_FOLDER)


@pytest.fixture(scope="session")
def historian_server(postgres_server_url):
    """A PostgreSQL historian with 2 days of 12 tags (+ Sys tags), boundary rows at every midnight,
    and the hostile tag names. Shared read-only by the DAG tests."""
    from airflow_backfill_provider.testing.services import create_database
    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    url = create_database(postgres_server_url, "historian")
    summary = simulate(
        url,
        SimulatorConfig(
            start=datetime(2025, 1, 1),
            end=datetime(2025, 1, 3),
            tags=12,
            rate=60,
            seed=7,
            boundary_every=timedelta(days=1),
            hostile_tags=True,
        ),
        replace=True,
    )
    return url, summary


def faulty_historian(url: str, *, days: int, tags: int, rate: int, fault_sql: list[str], predicate: str):
    """Simulate a PostgreSQL historian, then hide History behind a view filtered by ``predicate``: a
    PL/pgSQL function (created by ``fault_sql``) that raises to inject a real source failure.
    The data stays readable as ``history_data``. Returns an engine (caller disposes)."""
    import sqlalchemy as sa

    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    start = datetime(2025, 1, 1)
    simulate(
        url,
        SimulatorConfig(start=start, end=start + timedelta(days=days), tags=tags, rate=rate),
        replace=True,
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('ALTER TABLE "History" RENAME TO history_data'))
        for statement in fault_sql:
            conn.execute(sa.text(statement))
        conn.execute(sa.text(f'CREATE VIEW "History" AS SELECT * FROM history_data WHERE {predicate}'))
    return engine


def set_connections(monkeypatch, *, source_url: str, chdb_path: str, source_extra: dict | None = None):
    monkeypatch.setenv(
        "AIRFLOW_CONN_WONDERWARE_DEFAULT",
        json.dumps(
            {
                "conn_type": "wonderware",
                "extra": {"sqlalchemy_url": source_url, "retry_base_delay": 0.05, **(source_extra or {})},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}}),
    )
