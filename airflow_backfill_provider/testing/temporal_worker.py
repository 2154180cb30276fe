"""A Temporal worker for tests and demos, on its own thread and event loop, and a reindex stand-in.

:class:`WorkerThread` serves any workflow classes on a task queue in several namespaces of one
server; :class:`ReindexConversations` stands in for the seed's reindex workflow, so a test can
start workflows that complete, fail, or take a while, under the ids a Job's pods log.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError


@workflow.defn(name="ReindexConversations")
class ReindexConversations:
    """Completes, or with ``{"fail": true}`` fails; ``{"seconds": n}`` first sleeps n seconds."""

    @workflow.run
    async def run(self, params: dict | None = None) -> dict:
        params = params or {}
        if params.get("seconds"):
            await workflow.sleep(params["seconds"])
        if params.get("fail"):
            raise ApplicationError("asked to fail", non_retryable=True)
        return {"reindexed": params.get("customer")}


class WorkerThread:
    """Temporal workers for ``workflows`` on ``task_queue``, one per namespace, on their own loop."""

    def __init__(
        self, address: str, *, namespaces: Sequence[str], task_queue: str, workflows: Sequence[type[Any]]
    ) -> None:
        self.address = address
        self.namespaces = tuple(namespaces)
        self.task_queue = task_queue
        self.workflows = list(workflows)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="temporal-worker", daemon=True)

    def __enter__(self) -> WorkerThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"Temporal worker did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as err:  # surfaced by __enter__
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        from temporalio.client import Client
        from temporalio.worker import UnsandboxedWorkflowRunner, Worker

        self._stop = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            for ns in self.namespaces:
                client = await Client.connect(self.address, namespace=ns)
                worker = Worker(
                    client,
                    task_queue=self.task_queue,
                    workflows=self.workflows,
                    workflow_runner=UnsandboxedWorkflowRunner(),
                    graceful_shutdown_timeout=timedelta(seconds=0),
                )
                await stack.enter_async_context(worker)
            self._ready.set()
            await self._stop.wait()
