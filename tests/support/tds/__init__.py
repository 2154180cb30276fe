"""A TDS 7.4 (SQL Server protocol) endpoint for tests; see :mod:`tests.support.tds.server`."""

from __future__ import annotations

from .backend import (
    DATABASE_UNAVAILABLE,
    INVALID_OBJECT,
    LOGIN_FAILED,
    QUERY_CANCELLED,
    SYNTAX_ERROR,
    Backend,
    ColumnSpec,
    PreEncoded,
    ResultSet,
    Session,
    SqlError,
)
from .replay import ReplayBackend
from .server import LoginRecord, RequestRecord, TdsServer
from .tokens import encode_result, encode_result_chunks

__all__ = [
    "DATABASE_UNAVAILABLE",
    "INVALID_OBJECT",
    "LOGIN_FAILED",
    "QUERY_CANCELLED",
    "SYNTAX_ERROR",
    "Backend",
    "ColumnSpec",
    "PreEncoded",
    "ReplayBackend",
    "LoginRecord",
    "RequestRecord",
    "ResultSet",
    "Session",
    "SqlError",
    "TdsServer",
    "encode_result",
    "encode_result_chunks",
]
