"""Fixtures for DAG runs: a simulated historian in PostgreSQL and an embedded ClickHouse target.

The DAG files build their settings from the environment at parse time, so the fast retry settings
the tests need are set here, before any DagBag parses them.
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
    from airflow_backfill_provider.testing.services import postgres_historian
    from airflow_backfill_provider.testing.simulator import SimulatorConfig

    return postgres_historian(
        postgres_server_url,
        "historian",
        SimulatorConfig(
            start=datetime(2025, 1, 1),
            end=datetime(2025, 1, 3),
            tags=12,
            rate=60,
            seed=7,
            boundary_every=timedelta(days=1),
            hostile_tags=True,
        ),
    )


@pytest.fixture
def connections(monkeypatch):
    """Point the default connections at a historian URL and a chdb directory for one test."""

    def connect(*, source_url: str, chdb_path: str, source_extra: dict | None = None) -> None:
        extra = {"sqlalchemy_url": source_url, "retry_base_delay": 0.05, **(source_extra or {})}
        monkeypatch.setenv(
            "AIRFLOW_CONN_WONDERWARE_DEFAULT", json.dumps({"conn_type": "wonderware", "extra": extra})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
            json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": chdb_path}}),
        )

    return connect
