"""Fixtures for the Temporal tests: one dev server and one worker for the whole session."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from temporal_support import NAMESPACES, TASK_QUEUE, TestWorkflow, dev_server

from airflow_backfill_provider.testing.temporal_worker import WorkerThread


@pytest.fixture(scope="session")
def temporal_address():
    with dev_server() as address:
        host, port = address.rsplit(":", 1)
        os.environ["AIRFLOW_CONN_TEMPORAL_DEFAULT"] = json.dumps(
            {"conn_type": "temporal", "host": host, "port": int(port), "extra": {"namespace": "default"}}
        )
        try:
            yield address
        finally:
            os.environ.pop("AIRFLOW_CONN_TEMPORAL_DEFAULT", None)


@pytest.fixture(scope="session")
def temporal_worker(temporal_address):
    with WorkerThread(
        temporal_address, namespaces=NAMESPACES, task_queue=TASK_QUEUE, workflows=[TestWorkflow]
    ) as worker:
        yield worker


@pytest.fixture
def hook(temporal_worker):
    from airflow_backfill_provider.hooks.temporal import TemporalHook

    return TemporalHook()


@pytest.fixture
def uid():
    """A prefix no other test uses, so visibility queries see only this test's workflows."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def task_queue():
    return TASK_QUEUE
