"""Shared test setup: an isolated Airflow home and throwaway services.

Airflow reads its configuration when first imported, so the environment is set here, at import time
of the root conftest, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="abp-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from airflow_backfill_provider.testing.services import create_database, postgres_server  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh Airflow metadata database for the session (SQLite in the temp AIRFLOW_HOME)."""
    from airflow.utils import db

    db.resetdb(skip_init=False)
    yield


@pytest.fixture(scope="session")
def postgres_server_url():
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url):
    """A new, empty PostgreSQL database for one test."""
    return create_database(postgres_server_url, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def chdb_path(tmp_path):
    """A fresh embedded ClickHouse (chdb) data directory."""
    return str(tmp_path / "chdb")


@pytest.fixture
def clickhouse_server(tmp_path):
    """A ClickHouse server for one test: ClickHouse's HTTP interface over the embedded engine, in
    its own process (``tests/support/clickhouse_http.py``, the suite's one stand-in)."""
    from tests.support.clickhouse_http import clickhouse_http_server

    with clickhouse_http_server(tmp_path / "clickhouse-server") as endpoint:
        yield endpoint


@pytest.fixture(params=["embedded", "server"])
def clickhouse_conn(request, chdb_path) -> dict:
    """A ClickHouse connection (as ``AIRFLOW_CONN_*`` JSON takes it) in each of the hook's modes:
    ``chdb`` on a fresh data directory, and an ordinary ``clickhouse`` connection (host, port, login,
    password) to a fresh :func:`clickhouse_server`."""
    if request.param == "embedded":
        return {"conn_type": "chdb", "extra": {"chdb_path": chdb_path}}
    return request.getfixturevalue("clickhouse_server").connection()
