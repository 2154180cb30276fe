"""Temporal: list, inspect, start and stop workflow executions from Airflow (see docs/temporal.md).

Every operation is an ``a``-prefixed coroutine (for triggers, which must not block the triggerer's
event loop) with a same-named blocking twin (for operators and ``@task`` code). The SDK glue that
needs no Airflow is in :mod:`airflow_backfill_provider.temporal`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_backfill_provider.hooks._test_message import untransient
from airflow_backfill_provider.temporal.bridge import blocking, gather_bounded, run_sync
from airflow_backfill_provider.temporal.connection import client_kwargs_from_connection, connect
from airflow_backfill_provider.temporal.errors import (
    Endpoint,
    TemporalAuthError,
    TemporalConnectionError,
    TemporalError,
    TemporalInvalidArgumentError,
    TemporalNamespaceNotFoundError,
    TemporalQueryError,
    TemporalWorkflowFailedError,
    TemporalWorkflowNotFoundError,
    translates_rpc_errors,
)
from airflow_backfill_provider.temporal.records import execution_to_dict, read_history_points
from airflow_backfill_provider.temporal.start import start_workflow
from airflow_backfill_provider.workflows.retention import format_retention
from airflow_backfill_provider.workflows.status import WorkflowStatus

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle, WorkflowHistory

    from airflow_backfill_provider.workflows.classify import HistoryPoints

__all__ = [
    "TemporalAuthError",
    "TemporalConnectionError",
    "TemporalError",
    "TemporalHook",
    "TemporalInvalidArgumentError",
    "TemporalNamespaceNotFoundError",
    "TemporalQueryError",
    "TemporalWorkflowFailedError",
    "TemporalWorkflowNotFoundError",
    "client_kwargs_from_connection",
]

T = TypeVar("T")

# Unary calls (list, describe, start...) give up after this; waiting for a result does not.
DEFAULT_RPC_TIMEOUT = 60.0
# Concurrent RPCs for the many-workflow helpers: enough to hide latency, few enough to be polite.
DEFAULT_CONCURRENCY = 8


class TemporalHook(BaseHook):
    """
    Talk to a Temporal cluster: visibility queries, describe, history, start, signal, cancel.

    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param namespace: namespace to use instead of the connection's.
    :param rpc_timeout: seconds before a unary call gives up (``None``: the SDK's retries only).
    """

    conn_name_attr = "temporal_conn_id"
    default_conn_name = "temporal_default"
    conn_type = "temporal"
    hook_name = "Temporal"

    def __init__(
        self,
        temporal_conn_id: str = default_conn_name,
        *,
        namespace: str | None = None,
        rpc_timeout: float | None = DEFAULT_RPC_TIMEOUT,
    ) -> None:
        super().__init__()
        self.temporal_conn_id = temporal_conn_id
        self.namespace_override = namespace or None
        self.rpc_timeout = timedelta(seconds=rpc_timeout) if rpc_timeout else None
        self._client_kwargs: dict[str, Any] | None = None
        self._clients: dict[asyncio.AbstractEventLoop, Client] = {}

    # -- clients --------------------------------------------------------------------------------

    def _kwargs_from(self, conn: Any) -> dict[str, Any]:
        return client_kwargs_from_connection(
            host=conn.host,
            port=conn.port,
            password=conn.password,
            extra=conn.extra_dejson,
            namespace=self.namespace_override,
        )

    @property
    def namespace(self) -> str:
        if self.namespace_override:
            return self.namespace_override
        if self._client_kwargs is None:
            self._client_kwargs = self._kwargs_from(self.get_connection(self.temporal_conn_id))
        return self._client_kwargs["namespace"]

    @property
    def endpoint(self) -> Endpoint:
        """Connection id, frontend and namespace, as error messages name them."""
        kwargs = self._client_kwargs or {}
        return Endpoint(self.temporal_conn_id, kwargs.get("target_host", "?"), kwargs.get("namespace", "?"))

    async def aget_client(self) -> Client:
        """The SDK client for the running event loop, connected on first use."""
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            if self._client_kwargs is None:
                # In the triggerer: the async lookup, which does not block the event loop.
                self._client_kwargs = self._kwargs_from(await self.aget_connection(self.temporal_conn_id))
            self._clients[loop] = await connect(self._client_kwargs, self.endpoint)
        return self._clients[loop]

    async def _ahandle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle:
        return (await self.aget_client()).get_workflow_handle(workflow_id, run_id=run_id)

    def _sync(self, coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self._client_kwargs is None:
            # Resolve the connection in the calling thread: inside a task, the connection lookup
            # talks to the supervisor and must not run on another thread's event loop.
            self._client_kwargs = self._kwargs_from(self.get_connection(self.temporal_conn_id))
        return run_sync(coro_fn())

    def get_conn(self) -> Client:
        """The SDK client of the hook's private loop; use it through :meth:`run` from sync code."""
        return self._sync(self.aget_client)

    def run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Escape hatch: ``hook.run(lambda client: client.get_workflow_handle(x).query("q"))``."""

        async def call() -> T:
            return await fn(await self.aget_client())

        return self._sync(call)

    # -- visibility -----------------------------------------------------------------------------

    @translates_rpc_errors
    async def alist_executions(
        self, query: str | None = None, *, limit: int | None = None, page_size: int = 1000
    ) -> list[dict[str, Any]]:
        """Executions (runs) matching a visibility query, newest first, as dicts."""
        client = await self.aget_client()
        return [
            execution_to_dict(ex)
            async for ex in client.list_workflows(
                query or None, limit=limit, page_size=page_size, rpc_timeout=self.rpc_timeout
            )
        ]

    list_executions = blocking(alist_executions)

    @translates_rpc_errors
    async def acount_executions(self, query: str | None = None) -> int:
        client = await self.aget_client()
        return (await client.count_workflows(query or None, rpc_timeout=self.rpc_timeout)).count

    count_executions = blocking(acount_executions)

    # -- one workflow ---------------------------------------------------------------------------

    @translates_rpc_errors
    async def adescribe(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        """Describe a run (the latest one without ``run_id``): strongly consistent, unlike lists."""
        desc = await (await self._ahandle(workflow_id, run_id)).describe(rpc_timeout=self.rpc_timeout)
        info = execution_to_dict(desc)
        info["pending_activities"] = len(desc.raw_description.pending_activities)
        info["pending_children"] = len(desc.raw_description.pending_children)
        return info

    describe = blocking(adescribe)

    @translates_rpc_errors
    async def afetch_history(self, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
        """The full event history (``.to_json_dict()`` for a JSON form, or a replayer)."""
        handle = await self._ahandle(workflow_id, run_id)
        return await handle.fetch_history(rpc_timeout=self.rpc_timeout)

    fetch_history = blocking(afetch_history)

    @translates_rpc_errors
    async def aget_history_points(
        self, workflow_id: str, run_id: str | None = None, *, status: str | None = None
    ) -> HistoryPoints:
        """The start point and the close event of a run, from two small reads of its history.

        :param status: the run's status if known (from a list); otherwise it is described first.
        """
        if status is None:
            described = await self.adescribe(workflow_id, run_id)
            status, run_id = described["status"], described["run_id"]
        handle = await self._ahandle(workflow_id, run_id)
        return await read_history_points(
            handle, closed=status != WorkflowStatus.RUNNING, rpc_timeout=self.rpc_timeout
        )

    get_history_points = blocking(aget_history_points)

    async def aget_history_points_many(
        self, runs: Sequence[tuple[str, str, str | None]], *, concurrency: int = DEFAULT_CONCURRENCY
    ) -> dict[tuple[str, str], HistoryPoints]:
        """History points of many ``(workflow_id, run_id, status)`` runs, a few at a time."""

        async def one(run: tuple[str, str, str | None]) -> tuple[tuple[str, str], HistoryPoints]:
            return (run[0], run[1]), await self.aget_history_points(run[0], run[1], status=run[2])

        return dict(await gather_bounded(one, runs, concurrency))

    get_history_points_many = blocking(aget_history_points_many)

    async def aget_statuses(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Latest run of each id (``None`` when the id does not exist yet)."""

        async def one(wid: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return wid, await self.adescribe(wid)
            except TemporalWorkflowNotFoundError:
                return wid, None

        return dict(await gather_bounded(one, workflow_ids, DEFAULT_CONCURRENCY))

    get_statuses = blocking(aget_statuses)

    # -- start ----------------------------------------------------------------------------------

    @translates_rpc_errors
    async def astart_workflow(
        self, workflow: str, *, workflow_id: str, task_queue: str, **options: Any
    ) -> dict[str, Any]:
        """Start ``workflow`` under a deterministic id, or re-attach to the execution holding it.

        With the defaults a second call with the same id never starts a second execution: a
        running one is reused (``USE_EXISTING``) and a closed one is not replaced
        (``REJECT_DUPLICATE``). Pass ``id_reuse_policy="ALLOW_DUPLICATE_FAILED_ONLY"`` to start
        again after a failure. Returns ``{"workflow_id", "run_id", "started"}``.

        :param options: ``args``, ``id_reuse_policy``, ``id_conflict_policy``, ``execution_timeout``,
            ``run_timeout``, ``task_timeout``, ``search_attributes``, ``memo``, ``static_summary``
            of :func:`airflow_backfill_provider.temporal.start.start_workflow`.
        """
        return await start_workflow(
            await self.aget_client(),
            workflow,
            workflow_id=workflow_id,
            task_queue=task_queue,
            rpc_timeout=self.rpc_timeout,
            log=self.log,
            **options,
        )

    start_workflow = blocking(astart_workflow)

    # -- signal, cancel, terminate --------------------------------------------------------------

    @translates_rpc_errors
    async def asignal(
        self, workflow_id: str, signal: str, args: Sequence[Any] | None = None, run_id: str | None = None
    ) -> None:
        handle = await self._ahandle(workflow_id, run_id)
        await handle.signal(signal, args=list(args or []), rpc_timeout=self.rpc_timeout)

    signal = blocking(asignal)

    @translates_rpc_errors
    async def acancel(self, workflow_id: str, run_id: str | None = None) -> None:
        """Request cancellation: the workflow sees it and may clean up (unlike terminate)."""
        await (await self._ahandle(workflow_id, run_id)).cancel(rpc_timeout=self.rpc_timeout)

    cancel = blocking(acancel)

    @translates_rpc_errors
    async def aterminate(
        self, workflow_id: str, run_id: str | None = None, reason: str | None = None
    ) -> None:
        handle = await self._ahandle(workflow_id, run_id)
        await handle.terminate(reason=reason, rpc_timeout=self.rpc_timeout)

    terminate = blocking(aterminate)

    async def aterminate_by_query(
        self, query: str, *, reason: str | None = None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Terminate every running execution matching ``query``; returns them (or would, dry run)."""
        targets = await self.alist_executions(f"({query}) AND ExecutionStatus = '{WorkflowStatus.RUNNING}'")
        if dry_run:
            self.log.info("Dry run: would terminate %d running workflow(s) matching %s", len(targets), query)
            return targets

        async def one(t: dict[str, Any]) -> None:
            try:
                await self.aterminate(t["workflow_id"], t["run_id"], reason)
            except TemporalWorkflowNotFoundError:
                pass  # closed between the list and the call: nothing left to do

        await gather_bounded(one, targets, DEFAULT_CONCURRENCY)
        self.log.info("Terminate %d running workflow(s) matching %s", len(targets), query)
        return targets

    terminate_by_query = blocking(aterminate_by_query)

    # -- results --------------------------------------------------------------------------------

    @translates_rpc_errors
    async def aget_result(
        self, workflow_id: str, run_id: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """Wait for the workflow (following continue-as-new) and return its result.

        :raises TemporalWorkflowFailedError: it ended Failed, TimedOut, Terminated or Canceled.
        :raises TimeoutError: ``timeout`` seconds passed first (the workflow keeps running).
        """
        from temporalio.client import WorkflowFailureError

        handle = await self._ahandle(workflow_id, run_id)
        try:
            return await asyncio.wait_for(handle.result(), timeout)
        except WorkflowFailureError as err:
            desc = await self.adescribe(workflow_id)
            status = desc["status"]
            raise TemporalWorkflowFailedError(
                f"Workflow {workflow_id} ended {status}: {err.cause or err}",
                workflow_id=workflow_id,
                run_id=desc["run_id"],
                status=status,
            ) from err
        except asyncio.TimeoutError:
            raise TimeoutError(f"Workflow {workflow_id} did not close within {timeout}s") from None

    get_result = blocking(aget_result)

    # -- the namespace --------------------------------------------------------------------------

    @translates_rpc_errors
    async def adescribe_namespace(self) -> dict[str, Any]:
        """The hook's namespace: ``{"namespace", "retention", "state"}``.

        ``retention`` is how long Temporal keeps a closed execution (a ``timedelta``, ``None`` if the
        namespace reports none); ``state`` is ``Registered``, ``Deprecated`` or ``Deleted``.
        """
        from temporalio.api.enums.v1 import NamespaceState
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

        client = await self.aget_client()
        response = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace), timeout=self.rpc_timeout
        )
        config = response.config
        return {
            "namespace": client.namespace,
            "retention": config.workflow_execution_retention_ttl.ToTimedelta()
            if config.HasField("workflow_execution_retention_ttl")
            else None,
            "state": NamespaceState.Name(response.namespace_info.state)
            .removeprefix("NAMESPACE_STATE_")
            .capitalize(),
        }

    describe_namespace = blocking(adescribe_namespace)

    # -- connection test ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Connect and describe the namespace: proves address, TLS, credentials and namespace."""
        try:
            described = self._sync(self.adescribe_namespace)
        except Exception as err:
            return False, untransient(f"{type(err).__name__}: {err}", self.temporal_conn_id)
        target, retention = self._client_kwargs["target_host"], described["retention"]
        keeps = f", which keeps closed workflows for {format_retention(retention)}" if retention else ""
        return True, f"Connected to Temporal at {target}, namespace {described['namespace']!r}{keeps}"
