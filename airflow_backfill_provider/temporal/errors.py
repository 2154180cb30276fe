"""Temporal's exceptions, and the one translation of the SDK's ``RPCError`` into them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_backfill_provider.exceptions import BackfillProviderError, ConfigurationError

T = TypeVar("T")


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


@dataclass(frozen=True)
class Endpoint:
    """Where a call went, for error messages: Airflow connection id, frontend address, namespace."""

    conn_id: str
    target: str = "?"
    namespace: str = "?"


def translate_rpc_error(
    err: Exception, endpoint: Endpoint, *, query: str | None = None, workflow_id: str | None = None
) -> Exception:
    """This module's exception for an SDK ``RPCError``, saying what to do; other errors as they are.

    :param query: the visibility query the call ran, if any: an invalid argument is then the query.
    :param workflow_id: the workflow the call was about: a ``NOT_FOUND`` is then that workflow.
    """
    from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
    from temporalio.service import RPCError, RPCStatusCode

    if not isinstance(err, RPCError):
        return err
    ns = endpoint.namespace
    details = list(err.grpc_status.details) if err.grpc_status else []
    if any(d.Is(NamespaceNotFoundFailure.DESCRIPTOR) for d in details):
        return TemporalNamespaceNotFoundError(
            f"Temporal namespace {ns!r} does not exist at {endpoint.target}: {err.message}. Fix the "
            f"'namespace' of connection {endpoint.conn_id!r} (or the namespace argument), or register "
            "the namespace."
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
            f"Temporal refused the credentials of connection {endpoint.conn_id!r} for namespace "
            f"{ns!r}: {err.message}. Check the API key or client certificate."
        )
    if err.status == RPCStatusCode.UNAVAILABLE:
        return TemporalConnectionError(f"Temporal is unavailable: {err.message}")
    return TemporalError(f"Temporal call failed ({err.status.name}): {err.message}")


def translates_rpc_errors(
    afn: Callable[..., Coroutine[Any, Any, T]],
) -> Callable[..., Coroutine[Any, Any, T]]:
    """Decorate a coroutine method so an SDK ``RPCError`` leaves it as this module's exception.

    The method's object gives the :class:`Endpoint` as ``self.endpoint``; its ``workflow_id`` and
    ``query`` arguments, when it has them, name what the call was about.
    """
    signature = inspect.signature(afn)
    about_query = "query" in signature.parameters

    @functools.wraps(afn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return await afn(self, *args, **kwargs)
        except Exception as err:
            from temporalio.service import RPCError

            if not isinstance(err, RPCError):
                raise
            call = signature.bind(self, *args, **kwargs).arguments
            raise translate_rpc_error(
                err,
                self.endpoint,
                query=(call.get("query") or "") if about_query else None,
                workflow_id=call.get("workflow_id"),
            ) from err

    return wrapper
