"""The one translation of SDK ``RPCError``s, exercised with errors built by hand (no server)."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.common.v1 import GrpcStatus
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.service import RPCError, RPCStatusCode

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.temporal.bridge import gather_bounded
from airflow_backfill_provider.temporal.errors import (
    Endpoint,
    TemporalAuthError,
    TemporalConnectionError,
    TemporalError,
    TemporalInvalidArgumentError,
    TemporalNamespaceNotFoundError,
    TemporalQueryError,
    TemporalWorkflowNotFoundError,
    translate_rpc_error,
    translates_rpc_errors,
)

ENDPOINT = Endpoint("temporal_prod", "frontend:7233", "ingestion")


def rpc_error(status: RPCStatusCode, *details) -> RPCError:
    packed = []
    for d in details:
        any_ = AnyProto()
        any_.Pack(d)
        packed.append(any_)
    raw = GrpcStatus(code=status.value, message="server says no", details=packed).SerializeToString()
    return RPCError("server says no", status, raw)


@pytest.mark.parametrize(
    "err, kwargs, expected, text",
    [
        (rpc_error(RPCStatusCode.NOT_FOUND, NamespaceNotFoundFailure(namespace="ingestion")), {},
         TemporalNamespaceNotFoundError, "namespace 'ingestion' does not exist at frontend:7233"),
        (rpc_error(RPCStatusCode.INVALID_ARGUMENT), {"query": "X = 1"}, TemporalQueryError, "query 'X = 1'"),
        (rpc_error(RPCStatusCode.INVALID_ARGUMENT), {}, TemporalInvalidArgumentError, "rejected the request"),
        (rpc_error(RPCStatusCode.NOT_FOUND), {"workflow_id": "wf-1"}, TemporalWorkflowNotFoundError, "'wf-1'"),
        (rpc_error(RPCStatusCode.NOT_FOUND), {}, TemporalError, "NOT_FOUND"),
        (rpc_error(RPCStatusCode.PERMISSION_DENIED), {}, TemporalAuthError, "'temporal_prod'"),
        (rpc_error(RPCStatusCode.UNAVAILABLE), {}, TemporalConnectionError, "unavailable"),
    ],
)  # fmt: skip
def test_rpc_errors_become_package_errors(err, kwargs, expected, text):
    translated = translate_rpc_error(err, ENDPOINT, **kwargs)
    assert type(translated) is expected and text in str(translated)


def test_configuration_errors_are_the_ones_a_retry_cannot_fix():
    assert issubclass(TemporalQueryError, ConfigurationError)
    assert issubclass(TemporalAuthError, ConfigurationError)
    assert not issubclass(TemporalConnectionError, ConfigurationError)


class Calls:
    endpoint = ENDPOINT

    def __init__(self, err: Exception) -> None:
        self.err = err

    @translates_rpc_errors
    async def alist(self, query: str | None = None) -> None:
        raise self.err

    @translates_rpc_errors
    async def adescribe(self, workflow_id: str, run_id: str | None = None) -> None:
        raise self.err


def test_the_decorator_names_the_query_or_workflow_of_the_call():
    bad = rpc_error(RPCStatusCode.INVALID_ARGUMENT)
    with pytest.raises(TemporalQueryError, match="STARTS_WITHX") as info:
        asyncio.run(Calls(bad).alist("WorkflowId STARTS_WITHX 'x'"))
    assert info.value.__cause__ is bad
    with pytest.raises(TemporalQueryError):  # no query at all is still about the query
        asyncio.run(Calls(bad).alist())
    with pytest.raises(TemporalWorkflowNotFoundError, match="'wf-9'"):
        asyncio.run(Calls(rpc_error(RPCStatusCode.NOT_FOUND)).adescribe(workflow_id="wf-9"))
    other = KeyError("not an RPC error")
    with pytest.raises(KeyError) as info:
        asyncio.run(Calls(other).adescribe("wf"))
    assert info.value is other
    assert Calls.adescribe.__name__ == "adescribe"


def test_gather_bounded_keeps_order_and_limit():
    running, peak = 0, 0

    async def double(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (5 - n % 5))
        running -= 1
        return 2 * n

    assert asyncio.run(gather_bounded(double, range(10), 3)) == [2 * n for n in range(10)]
    assert peak == 3
