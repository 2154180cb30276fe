"""Fixtures for the Kubernetes tests: one kmock emulator on loopback for the session."""

from __future__ import annotations

import uuid

import pytest

from airflow_backfill_provider.testing.kubernetes import KubernetesEmulatorThread


@pytest.fixture(scope="session")
def k8s():
    with KubernetesEmulatorThread() as emulator:
        yield emulator


@pytest.fixture
def namespace(k8s):
    """A namespace no other test uses; the emulator's controller and logs reset for each test."""
    k8s.pod_plan = None
    k8s.job_condition = None
    k8s.logs.clear()
    return f"ns-{uuid.uuid4().hex[:8]}"
