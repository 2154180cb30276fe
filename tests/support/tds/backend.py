"""What the TDS endpoint (:mod:`tests.support.tds.server`) asks of the database behind it.

The endpoint speaks MS-TDS 7.4 and nothing else: it decodes logins, batches and RPC calls, hands
their T-SQL and typed parameters to a :class:`Backend`, and encodes what the backend answers. The
Historian emulator (:mod:`tests.support.aveva`) is one backend; a replay backend that streams a
pre-encoded result is another (the benchmarks' source limit).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# SQL Server's own error numbers for what the tests provoke.
LOGIN_FAILED = 18456  # "Login failed for user '%s'."
DATABASE_UNAVAILABLE = 4060  # "Cannot open database "%s" requested by the login. The login failed."
INVALID_OBJECT = 208  # "Invalid object name '%s'."
SYNTAX_ERROR = 102  # "Incorrect syntax near '%s'."
QUERY_CANCELLED = 3617  # reported with an ATTENTION acknowledgement, never as an ERROR token here


class SqlError(Exception):
    """An error the server reports with an ERROR token (and, for a login, ends the session)."""

    def __init__(self, number: int, message: str, *, severity: int = 16, state: int = 1) -> None:
        super().__init__(message)
        self.number = number
        self.message = message
        self.severity = severity
        self.state = state


@dataclass(frozen=True)
class ColumnSpec:
    """One result column. ``sql_type`` is one of: ``datetime2`` (scale 7), ``nvarchar`` (``length``
    characters, ``None`` for NVARCHAR(MAX)), ``varchar`` (same), ``float`` (8 bytes), ``real``,
    ``bigint``, ``int``, ``smallint``, ``tinyint``, ``bit``."""

    name: str
    sql_type: str
    length: int | None = 4000
    nullable: bool = True


@dataclass
class ResultSet:
    """Rows of one SELECT, as Python values (``datetime`` naive, ``str``, ``float``, ``int``,
    ``bool``, ``None``); or, with no columns, a statement's row count only (``rowcount`` None: no
    count, as for ``SET``)."""

    columns: Sequence[ColumnSpec] = ()
    rows: Iterable[Sequence[object]] = ()
    rowcount: int | None = None


@dataclass
class PreEncoded:
    """A result already encoded as TDS tokens (COLMETADATA, ROW/NBCROW..., DONE), sent as it is:
    the replay mode that streams at socket speed. ``chunks`` are bytes objects, sent in order."""

    chunks: Iterable[bytes]


@dataclass
class Session:
    """What the endpoint knows of one client connection; a backend may keep its own state in ``state``.

    ``cancelled`` is set by the endpoint while a client's ATTENTION (a cancel, e.g. its query
    timeout) for the running request is pending: a deliberately slow backend can wait on it
    (``session.cancelled.wait(seconds)``) instead of sleeping, so a cancel is acknowledged at once.
    """

    login: str
    database: str
    spid: int
    state: dict = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


class Backend(Protocol):
    def login(self, user: str, password: str, database: str | None) -> str:
        """Check the credentials; return the session's database (the login's default when
        ``database`` is None or empty). Raise :class:`SqlError` (18456, 4060) to refuse."""

    def execute(
        self, sql: str, params: Mapping[str, object], session: Session
    ) -> Iterable[ResultSet | PreEncoded]:
        """Run one batch (or the statement of an RPC call, ``params`` keyed by name with the
        ``@``, e.g. ``{"@P1": 3}``). Results are sent as they are produced, so a generator streams;
        a :class:`SqlError` raised at any point becomes an ERROR token after what was sent."""
