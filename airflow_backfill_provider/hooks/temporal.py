"""Temporal: list, inspect, start and stop workflow executions from Airflow.

The Temporal SDK is asynchronous. Every operation is an ``a``-prefixed coroutine (for triggers,
which must not block the triggerer's event loop) with a same-named synchronous wrapper (for
operators and ``@task`` code). The wrappers run the coroutines on one private event loop thread
per process, so the gRPC connection is made once per hook and reused across calls.

Connection fields (conn type ``temporal``):

=================  ===========================================================================
host, port         the frontend, e.g. ``temporal-frontend.temporal`` and ``7233`` (default port)
password           API key (Temporal Cloud); sent as ``Authorization: Bearer``, implies TLS
extra.namespace    namespace (default ``default``); a hook's ``namespace`` argument overrides it
extra.tls          ``true`` for server-side TLS with the system roots
extra.tls_ca_cert, PEM text or a path to a PEM file: CA to trust, client certificate and key
tls_client_cert,   for mTLS (any of them implies TLS)
tls_client_key
extra.tls_server   name to expect on the server certificate (SNI), when it differs from host
_name
extra.rpc_metadata headers sent with every call (object of strings)
extra.connect_     seconds to wait for the connection (default 10)
timeout
=================  ===========================================================================
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_backfill_provider.exceptions import BackfillProviderError, ConfigurationError
from airflow_backfill_provider.workflows.gaps import RUNNING, HistoryPoints

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution, WorkflowHistory

T = TypeVar("T")

DEFAULT_PORT = 7233
DEFAULT_NAMESPACE = "default"
DEFAULT_CONNECT_TIMEOUT = 10.0
# Unary calls (list, describe, start...) give up after this; waiting for a result does not.
DEFAULT_RPC_TIMEOUT = 60.0
# Concurrent RPCs for the many-workflow helpers: enough to hide latency, few enough to be polite.
DEFAULT_CONCURRENCY = 8

_STATUS_NAMES = {
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELED": "Canceled",
    "TERMINATED": "Terminated",
    "CONTINUED_AS_NEW": "ContinuedAsNew",
    "TIMED_OUT": "TimedOut",
}
_REUSE_POLICIES = (
    "ALLOW_DUPLICATE",
    "ALLOW_DUPLICATE_FAILED_ONLY",
    "REJECT_DUPLICATE",
    "TERMINATE_IF_RUNNING",
)
_CONFLICT_POLICIES = ("FAIL", "USE_EXISTING", "TERMINATE_EXISTING")


class TemporalError(BackfillProviderError):
    """A Temporal call failed."""


class TemporalConnectionError(TemporalError):
    """The Temporal frontend could not be reached (transient: retrying may help)."""


class TemporalAuthError(TemporalError, ConfigurationError):
    """The server refused the credentials (API key or client certificate)."""


class TemporalNamespaceNotFoundError(TemporalError, ConfigurationError):
    """The namespace does not exist on the server."""


class TemporalInvalidArgumentError(TemporalError, ConfigurationError):
    """The server rejected a request as malformed."""


class TemporalQueryError(TemporalInvalidArgumentError):
    """The visibility query is malformed or uses an unknown search attribute."""


class TemporalWorkflowNotFoundError(TemporalError, LookupError):
    """No execution with this workflow id (and run id) exists in the namespace."""


class TemporalWorkflowFailedError(TemporalError):
    """The workflow closed without completing (Failed, TimedOut, Terminated or Canceled)."""

    def __init__(self, message: str, *, workflow_id: str, run_id: str | None, status: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.status = status


# -- connection → client kwargs (pure) ---------------------------------------------------------


def client_kwargs_from_connection(
    *,
    host: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any],
    namespace: str | None = None,
) -> dict[str, Any]:
    """Map an Airflow connection's fields onto ``temporalio.client.Client.connect`` kwargs."""
    from temporalio.service import TLSConfig

    # Connections saved by older UIs prefix custom fields with extra__temporal__.
    extra = {k.removeprefix("extra__temporal__"): v for k, v in extra.items()}
    host = (host or "").strip()
    for scheme in ("grpc://", "grpcs://", "http://", "https://", "dns:///"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.rstrip("/")
    if not host:
        raise ConfigurationError("The Temporal connection has no host; set it to the frontend's address.")
    target = host if (":" in host and not port) else f"{host}:{port or DEFAULT_PORT}"
    kwargs: dict[str, Any] = {
        "target_host": target,
        "namespace": namespace or extra.get("namespace") or DEFAULT_NAMESPACE,
        "connect_timeout": timedelta(seconds=float(extra.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)),
    }
    api_key = password or extra.get("api_key")
    if api_key:
        kwargs["api_key"] = api_key
    metadata = extra.get("rpc_metadata") or {}
    if not isinstance(metadata, Mapping) or not all(isinstance(v, str) for v in metadata.values()):
        raise ConfigurationError("Temporal connection extra 'rpc_metadata' must be an object of strings.")
    if metadata:
        kwargs["rpc_metadata"] = dict(metadata)
    ca = _pem(extra.get("tls_ca_cert"), "tls_ca_cert")
    cert = _pem(extra.get("tls_client_cert"), "tls_client_cert")
    key = _pem(extra.get("tls_client_key"), "tls_client_key")
    server_name = extra.get("tls_server_name") or None
    if bool(cert) != bool(key):
        raise ConfigurationError(
            "Temporal connection: mTLS needs both 'tls_client_cert' and 'tls_client_key'; only one is set."
        )
    tls = extra.get("tls")
    if isinstance(tls, str):
        tls = tls.strip().lower() in ("1", "true", "yes", "on")
    if ca or cert or server_name:
        kwargs["tls"] = TLSConfig(
            server_root_ca_cert=ca, domain=server_name, client_cert=cert, client_private_key=key
        )
    elif tls:
        # Only ever switches TLS on: a form's unticked box must not turn off the TLS an API key needs.
        kwargs["tls"] = True
    return kwargs


def _pem(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    text = str(value).strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        # The value is neither PEM nor a file: never echo it, it may be a mangled secret.
        raise ConfigurationError(
            f"Temporal connection extra {what!r} must be PEM text (-----BEGIN ...) or the path of a "
            "readable PEM file; the value given is neither."
        )
    with open(path, "rb") as f:
        return f.read()


def status_name(status: Any) -> str:
    """Visibility's spelling of an execution status (``TimedOut``), from the SDK enum."""
    if status is None:
        return "Unknown"
    return _STATUS_NAMES.get(getattr(status, "name", str(status)), str(status))


def execution_to_dict(ex: WorkflowExecution) -> dict[str, Any]:
    """The JSON-friendly part of a visibility record (for XCom and logs)."""
    return {
        "workflow_id": ex.id,
        "run_id": ex.run_id,
        "workflow_type": ex.workflow_type,
        "status": status_name(ex.status),
        "task_queue": ex.task_queue,
        "start_time": _iso(ex.start_time),
        "close_time": _iso(ex.close_time),
        "history_length": ex.history_length,
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


# -- the sync bridge -----------------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_LOOP_THREAD = "temporal-hook-loop"


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's private loop thread and wait for it."""
    global _loop, _loop_pid
    with _loop_lock:
        # A forked child (task runners fork) inherits the loop object but not its thread.
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name=_LOOP_THREAD, daemon=True).start()
        loop = _loop
    if threading.current_thread().name == _LOOP_THREAD:
        coro.close()
        raise RuntimeError("A blocking TemporalHook method was called from async code: await its a* form.")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _blocking(afn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """The synchronous twin of a hook coroutine ``a<name>``, for operators and ``@task`` code."""

    @functools.wraps(afn)
    def wrapper(self: TemporalHook, *args: Any, **kwargs: Any) -> T:
        return self._sync(lambda: afn(self, *args, **kwargs))

    wrapper.__name__ = wrapper.__qualname__ = afn.__name__[1:]
    wrapper.__doc__ = f"Blocking form of :meth:`{afn.__name__}`." + (
        f"\n\n{afn.__doc__}" if afn.__doc__ else ""
    )
    return wrapper


# -- the hook ------------------------------------------------------------------------------------


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

    async def aget_client(self) -> Client:
        """The SDK client for the running event loop, connected on first use."""
        from temporalio.client import Client

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is not None:
            return client
        if self._client_kwargs is None:
            # In the triggerer: the async lookup, which does not block the event loop.
            self._client_kwargs = self._kwargs_from(await self.aget_connection(self.temporal_conn_id))
        kwargs = self._client_kwargs
        try:
            client = await Client.connect(**kwargs)
        except RuntimeError as err:
            raise TemporalConnectionError(
                f"Cannot connect to Temporal at {kwargs['target_host']} (namespace {kwargs['namespace']!r}, "
                f"connection {self.temporal_conn_id!r}): {err}. Check host, port and TLS settings."
            ) from err
        self._clients[loop] = client
        return client

    def _sync(self, coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self._client_kwargs is None:
            # Resolve the connection in the calling thread: inside a task, the connection lookup
            # talks to the supervisor and must not run on another thread's event loop.
            self._client_kwargs = self._kwargs_from(self.get_connection(self.temporal_conn_id))
        return _run_sync(coro_fn())

    def get_conn(self) -> Client:
        """The SDK client of the hook's private loop; use it through :meth:`run` from sync code."""
        return self._sync(self.aget_client)

    def run(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Escape hatch: ``hook.run(lambda client: client.get_workflow_handle(x).query("q"))``."""

        async def call() -> T:
            return await fn(await self.aget_client())

        return self._sync(call)

    def _error(
        self, err: Exception, *, query: str | None = None, workflow_id: str | None = None
    ) -> Exception:
        """Turn an SDK ``RPCError`` into this module's exceptions, with what to do about it."""
        from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
        from temporalio.service import RPCError, RPCStatusCode

        if not isinstance(err, RPCError):
            return err
        ns = (self._client_kwargs or {}).get("namespace", "?")
        details = list(err.grpc_status.details) if err.grpc_status else []
        if any(d.Is(NamespaceNotFoundFailure.DESCRIPTOR) for d in details):
            return TemporalNamespaceNotFoundError(
                f"Temporal namespace {ns!r} does not exist at {self._client_kwargs['target_host']}: "
                f"{err.message}. Fix the 'namespace' of connection {self.temporal_conn_id!r} (or the "
                "namespace argument), or register the namespace."
            )
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            if query is not None:
                return TemporalQueryError(
                    f"Temporal rejected the visibility query {query!r}: {err.message}. Search attribute "
                    "names are case sensitive and values need quotes, e.g. "
                    "WorkflowId STARTS_WITH 'reindex-' AND ExecutionStatus = 'Failed'."
                )
            return TemporalInvalidArgumentError(f"Temporal rejected the request: {err.message}")
        if err.status == RPCStatusCode.NOT_FOUND and workflow_id is not None:
            return TemporalWorkflowNotFoundError(
                f"No workflow execution {workflow_id!r} in namespace {ns!r}: {err.message}"
            )
        if err.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
            return TemporalAuthError(
                f"Temporal refused the credentials of connection {self.temporal_conn_id!r} for namespace "
                f"{ns!r}: {err.message}. Check the API key or client certificate."
            )
        if err.status == RPCStatusCode.UNAVAILABLE:
            return TemporalConnectionError(f"Temporal is unavailable: {err.message}")
        return TemporalError(f"Temporal call failed ({err.status.name}): {err.message}")

    # -- visibility -----------------------------------------------------------------------------

    async def alist_executions(
        self, query: str | None = None, *, limit: int | None = None, page_size: int = 1000
    ) -> list[dict[str, Any]]:
        """Executions (runs) matching a visibility query, newest first, as dicts."""
        client = await self.aget_client()
        try:
            return [
                execution_to_dict(ex)
                async for ex in client.list_workflows(
                    query or None, limit=limit, page_size=page_size, rpc_timeout=self.rpc_timeout
                )
            ]
        except Exception as err:
            raise self._error(err, query=query or "") from err

    list_executions = _blocking(alist_executions)

    async def acount_executions(self, query: str | None = None) -> int:
        client = await self.aget_client()
        try:
            return (await client.count_workflows(query or None, rpc_timeout=self.rpc_timeout)).count
        except Exception as err:
            raise self._error(err, query=query or "") from err

    count_executions = _blocking(acount_executions)

    # -- one workflow ---------------------------------------------------------------------------

    async def adescribe(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        """Describe a run (the latest one without ``run_id``): strongly consistent, unlike lists."""
        client = await self.aget_client()
        try:
            desc = await client.get_workflow_handle(workflow_id, run_id=run_id).describe(
                rpc_timeout=self.rpc_timeout
            )
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err
        info = execution_to_dict(desc)
        info["pending_activities"] = len(desc.raw_description.pending_activities)
        info["pending_children"] = len(desc.raw_description.pending_children)
        return info

    describe = _blocking(adescribe)

    async def afetch_history(self, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
        """The full event history (``.to_json_dict()`` for a JSON form, or a replayer)."""
        client = await self.aget_client()
        try:
            return await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history(
                rpc_timeout=self.rpc_timeout
            )
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err

    fetch_history = _blocking(afetch_history)

    async def aget_history_points(
        self, workflow_id: str, run_id: str | None = None, *, status: str | None = None
    ) -> HistoryPoints:
        """The start point and the close event of a run, from two small reads of its history.

        :param status: the run's status if known (from a list); otherwise it is described first.
            The close event is only read for closed runs: for an open one the server would hold
            the request until the run closes.
        """
        from temporalio.client import WorkflowHistoryEventFilterType

        client = await self.aget_client()
        if status is None:
            described = await self.adescribe(workflow_id, run_id)
            status, run_id = described["status"], described["run_id"]
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        start = close_status = close_time = None
        try:
            async for event in handle.fetch_history_events(page_size=1, rpc_timeout=self.rpc_timeout):
                if event.HasField("workflow_execution_started_event_attributes"):
                    start = event.event_time.ToDatetime(tzinfo=timezone.utc)
                break
            if status != RUNNING:
                async for event in handle.fetch_history_events(
                    event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT, rpc_timeout=self.rpc_timeout
                ):
                    close_status = _CLOSE_EVENTS.get(event.WhichOneof("attributes"))
                    if close_status:
                        close_time = event.event_time.ToDatetime(tzinfo=timezone.utc)
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err
        return HistoryPoints(start_time=start, close_status=close_status, close_time=close_time)

    get_history_points = _blocking(aget_history_points)

    async def aget_history_points_many(
        self, runs: Sequence[tuple[str, str, str | None]], *, concurrency: int = DEFAULT_CONCURRENCY
    ) -> dict[tuple[str, str], HistoryPoints]:
        """History points of many ``(workflow_id, run_id, status)`` runs, a few at a time."""
        sem = asyncio.Semaphore(concurrency)

        async def one(wid: str, rid: str, status: str | None) -> tuple[tuple[str, str], HistoryPoints]:
            async with sem:
                return (wid, rid), await self.aget_history_points(wid, rid, status=status)

        return dict(await asyncio.gather(*(one(*run) for run in runs)))

    get_history_points_many = _blocking(aget_history_points_many)

    async def aget_statuses(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Latest run of each id (``None`` when the id does not exist yet)."""
        sem = asyncio.Semaphore(DEFAULT_CONCURRENCY)

        async def one(wid: str) -> tuple[str, dict[str, Any] | None]:
            async with sem:
                try:
                    return wid, await self.adescribe(wid)
                except TemporalWorkflowNotFoundError:
                    return wid, None

        return dict(await asyncio.gather(*(one(w) for w in workflow_ids)))

    get_statuses = _blocking(aget_statuses)

    # -- start ----------------------------------------------------------------------------------

    async def astart_workflow(
        self,
        workflow: str,
        *,
        workflow_id: str,
        task_queue: str,
        args: Sequence[Any] | None = None,
        id_reuse_policy: str = "REJECT_DUPLICATE",
        id_conflict_policy: str = "USE_EXISTING",
        execution_timeout: timedelta | None = None,
        run_timeout: timedelta | None = None,
        task_timeout: timedelta | None = None,
        search_attributes: Mapping[str, Any] | None = None,
        memo: Mapping[str, Any] | None = None,
        static_summary: str | None = None,
    ) -> dict[str, Any]:
        """Start ``workflow`` under a deterministic id, or re-attach to the execution holding it.

        With the defaults a second call with the same id never starts a second execution: a
        running one is reused (``USE_EXISTING``) and a closed one is not replaced
        (``REJECT_DUPLICATE``). Pass ``id_reuse_policy="ALLOW_DUPLICATE_FAILED_ONLY"`` to start
        again after a failure. Returns ``{"workflow_id", "run_id", "started"}``.
        """
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        reuse = _policy(WorkflowIDReusePolicy, id_reuse_policy, _REUSE_POLICIES, "id_reuse_policy")
        conflict = _policy(
            WorkflowIDConflictPolicy, id_conflict_policy, _CONFLICT_POLICIES, "id_conflict_policy"
        )
        client = await self.aget_client()
        try:
            handle = await client.start_workflow(
                workflow,
                args=list(args or []),
                id=workflow_id,
                task_queue=task_queue,
                id_reuse_policy=reuse,
                id_conflict_policy=conflict,
                execution_timeout=execution_timeout,
                run_timeout=run_timeout,
                task_timeout=task_timeout,
                search_attributes=typed_search_attributes(search_attributes),
                memo=dict(memo) if memo else None,
                static_summary=static_summary,
                rpc_timeout=self.rpc_timeout,
            )
        except WorkflowAlreadyStartedError as err:
            self.log.info(
                "Workflow %s already exists (run %s): re-attaching, not starting", workflow_id, err.run_id
            )
            return {"workflow_id": workflow_id, "run_id": err.run_id, "started": False}
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err
        # The start response says whether USE_EXISTING attached to a running execution; the SDK
        # keeps it on the handle only.
        response = getattr(handle, "_start_workflow_response", None)
        started = bool(getattr(response, "started", True))
        return {"workflow_id": workflow_id, "run_id": handle.result_run_id, "started": started}

    start_workflow = _blocking(astart_workflow)

    # -- signal, cancel, terminate --------------------------------------------------------------

    async def asignal(
        self, workflow_id: str, signal: str, args: Sequence[Any] | None = None, run_id: str | None = None
    ) -> None:
        client = await self.aget_client()
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).signal(
                signal, args=list(args or []), rpc_timeout=self.rpc_timeout
            )
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err

    signal = _blocking(asignal)

    async def acancel(self, workflow_id: str, run_id: str | None = None) -> None:
        """Request cancellation: the workflow sees it and may clean up (unlike terminate)."""
        client = await self.aget_client()
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).cancel(rpc_timeout=self.rpc_timeout)
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err

    cancel = _blocking(acancel)

    async def aterminate(
        self, workflow_id: str, run_id: str | None = None, reason: str | None = None
    ) -> None:
        client = await self.aget_client()
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).terminate(
                reason=reason, rpc_timeout=self.rpc_timeout
            )
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err

    terminate = _blocking(aterminate)

    async def _aapply_to_running(
        self, query: str, action: Callable[[str, str], Awaitable[None]], what: str, dry_run: bool
    ) -> list[dict[str, Any]]:
        targets = await self.alist_executions(f"({query}) AND ExecutionStatus = '{RUNNING}'")
        if dry_run:
            self.log.info("Dry run: would %s %d running workflow(s) matching %s", what, len(targets), query)
            return targets
        sem = asyncio.Semaphore(DEFAULT_CONCURRENCY)

        async def one(t: dict[str, Any]) -> None:
            async with sem:
                try:
                    await action(t["workflow_id"], t["run_id"])
                except TemporalWorkflowNotFoundError:
                    pass  # closed between the list and the call: nothing left to do

        await asyncio.gather(*(one(t) for t in targets))
        self.log.info("%s %d running workflow(s) matching %s", what.capitalize(), len(targets), query)
        return targets

    async def asignal_by_query(
        self, query: str, signal: str, args: Sequence[Any] | None = None, *, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Signal every running execution matching ``query``; returns them (or would, dry run)."""
        return await self._aapply_to_running(
            query, lambda w, r: self.asignal(w, signal, args, r), f"signal {signal!r}", dry_run
        )

    signal_by_query = _blocking(asignal_by_query)

    async def acancel_by_query(self, query: str, *, dry_run: bool = False) -> list[dict[str, Any]]:
        return await self._aapply_to_running(query, self.acancel, "cancel", dry_run)

    cancel_by_query = _blocking(acancel_by_query)

    async def aterminate_by_query(
        self, query: str, *, reason: str | None = None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        return await self._aapply_to_running(
            query, lambda w, r: self.aterminate(w, r, reason), "terminate", dry_run
        )

    terminate_by_query = _blocking(aterminate_by_query)

    # -- results --------------------------------------------------------------------------------

    async def aget_result(
        self, workflow_id: str, run_id: str | None = None, *, timeout: float | None = None
    ) -> Any:
        """Wait for the workflow (following continue-as-new) and return its result.

        :raises TemporalWorkflowFailedError: it ended Failed, TimedOut, Terminated or Canceled.
        :raises TimeoutError: ``timeout`` seconds passed first (the workflow keeps running).
        """
        from temporalio.client import WorkflowFailureError

        client = await self.aget_client()
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
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
        except Exception as err:
            raise self._error(err, workflow_id=workflow_id) from err

    get_result = _blocking(aget_result)

    # -- connection test ------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Connect and describe the namespace: proves address, TLS, credentials and namespace."""

        async def probe() -> str:
            from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

            client = await self.aget_client()
            try:
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=client.namespace), timeout=self.rpc_timeout
                )
            except Exception as err:
                raise self._error(err) from err
            return client.namespace

        try:
            namespace = self._sync(probe)
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        return True, f"Connected to Temporal at {self._client_kwargs['target_host']}, namespace {namespace!r}"


_CLOSE_EVENTS = {
    "workflow_execution_completed_event_attributes": "Completed",
    "workflow_execution_failed_event_attributes": "Failed",
    "workflow_execution_timed_out_event_attributes": "TimedOut",
    "workflow_execution_terminated_event_attributes": "Terminated",
    "workflow_execution_canceled_event_attributes": "Canceled",
    "workflow_execution_continued_as_new_event_attributes": "ContinuedAsNew",
}


def _policy(enum: Any, value: Any, allowed: Sequence[str], what: str) -> Any:
    if isinstance(value, enum):
        return value
    name = str(value).upper()
    if name not in allowed:
        raise ConfigurationError(f"Invalid {what} {value!r}; use one of {', '.join(allowed)}.")
    return enum[name]


def typed_search_attributes(values: Mapping[str, Any] | None) -> Any:
    """Typed search attributes from a plain mapping, the type inferred from each value.

    ``str`` → Keyword, ``bool`` → Bool, ``int`` → Int, ``float`` → Float, ``datetime`` →
    Datetime, list of ``str`` → KeywordList. Attributes other than the built-in ones must be
    registered on the namespace first.
    """
    if not values:
        return None
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    pairs = []
    for name, value in values.items():
        if isinstance(value, bool):
            key = SearchAttributeKey.for_bool(name)
        elif isinstance(value, int):
            key = SearchAttributeKey.for_int(name)
        elif isinstance(value, float):
            key = SearchAttributeKey.for_float(name)
        elif isinstance(value, datetime):
            key = SearchAttributeKey.for_datetime(name)
        elif isinstance(value, str):
            key = SearchAttributeKey.for_keyword(name)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            key, value = SearchAttributeKey.for_keyword_list(name), list(value)
        else:
            raise ConfigurationError(
                f"Search attribute {name!r} has a value of type {type(value).__name__}; use str, int, "
                "float, bool, datetime or a list of str."
            )
        pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)
