"""An AVEVA Historian ``Runtime`` database as a backend of the TDS endpoint (:mod:`tests.support.tds`).

What a client of SQL Server sees of a Historian, as closely as this machine allows (no SQL Server
and no Historian can run here): SQL logins with passwords, the ``Runtime`` database, ``TagRef``,
``QualityMap``, and ``History`` answered by AVEVA's retrieval rules (:mod:`.retrieval`) rather than
by returning stored rows. Everything else the drivers and SQLAlchemy send on connect (``@@version``,
``SET``, transaction statements, isolation-level queries) gets the answer SQL Server gives.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import datetime

from sqlglot import exp

from airflow_backfill_provider.historian.schema import HISTORY_COLUMNS, TAGREF_COLUMNS
from tests.support.aveva import tsql
from tests.support.aveva.retrieval import (
    QD_NO_DATA,
    QUALITY_INITIAL,
    Request,
    Row,
    retrieval_bounds,
    retrieve,
)
from tests.support.aveva.store import HistorianStore
from tests.support.tds.backend import (
    DATABASE_UNAVAILABLE,
    INVALID_OBJECT,
    LOGIN_FAILED,
    ColumnSpec,
    ResultSet,
    Session,
    SqlError,
)

VERSION = (
    "Microsoft SQL Server 2019 (RTM) - 15.0.2000.5 (X64) \n\tSep 24 2019 13:48:23 \n\t"
    "Copyright (C) 2019 Microsoft Corporation\n\tDeveloper Edition (64-bit) on Linux (emulated AVEVA Historian)"
)
_SQL_TYPES = {
    "datetime": ("datetime2", None),
    "str": ("nvarchar", 4000),
    "float": ("float", None),
    "int": ("int", None),
}
COLUMN_SPECS: dict[str, ColumnSpec] = {
    c.name.lower(): ColumnSpec(
        c.name,
        _SQL_TYPES[c.kind][0],
        256 if c.name == "TagName" else _SQL_TYPES[c.kind][1],
        c.nullable,
    )
    for c in (*HISTORY_COLUMNS, *TAGREF_COLUMNS)
}
_DATETIME_COLUMNS = {c.name for c in HISTORY_COLUMNS if c.kind == "datetime"}
_HISTORY_NAMES = [c.name for c in HISTORY_COLUMNS]
# Statements that change nothing the emulator models: session settings and transactions.
_NO_RESULT = re.compile(r"^\s*(set\s|begin\s+tran|commit|rollback|if\s+@@trancount|use\s)", re.I)
_CANNED: tuple[tuple[re.Pattern, object], ...] = (
    (re.compile(r"^\s*select\s+@@version\s*$", re.I), ("", "nvarchar", VERSION)),
    (re.compile(r"serverproperty\s*\(\s*'productversion'\s*\)", re.I), ("", "nvarchar", "15.0.2000.5")),
    (re.compile(r"^\s*select\s+schema_name\s*\(\s*\)\s*$", re.I), ("", "nvarchar", "dbo")),
    (re.compile(r"default_schema_name", re.I), ("default_schema_name", "nvarchar", "dbo")),
    (re.compile(r"transaction_isolation_level", re.I), ("", "nvarchar", "READ COMMITTED")),
    (re.compile(r"is_read_committed_snapshot_on", re.I), ("", "int", 0)),
    # SQLAlchemy asks which view holds the sessions before it asks for the isolation level
    (re.compile(r"from\s+sys\.system_views", re.I), ("name", "nvarchar", "dm_exec_sessions")),
)
_SESSION_QUERY = re.compile(r"^\s*select\s+(db_name\s*\(\s*\)|@@spid)\s*$", re.I)
# sqlglot's nodes for T-SQL's IF blocks, SET, USE and transaction statements
_NO_RESULT_NODES = tuple(
    getattr(exp, name)
    for name in ("Transaction", "Commit", "Rollback", "Set", "Use", "IfBlock")
    if hasattr(exp, name)
)


class HistorianEmulator:
    """A TDS backend: ``users`` maps login to password; ``databases`` are the ones that exist."""

    def __init__(
        self,
        store: HistorianStore,
        *,
        users: Mapping[str, str],
        databases: tuple[str, ...] = ("Runtime", "master"),
        default_database: str = "Runtime",
        server_zone: str = "UTC",
    ) -> None:
        self.store = store
        self.users = dict(users)
        self.databases = databases
        self.default_database = default_database
        self.server_zone = server_zone
        self.history_queries: list[Request] = []  # every retrieval asked for, for tests to inspect
        self.synthetic_rows = 0  # initial values and no-data NULLs the rules made (not stored values)
        self.delay_seconds = 0.0  # a fault: History queries wait this long (a query timeout's cause)

    # -- Backend protocol ------------------------------------------------------------------------

    def login(self, user: str, password: str, database: str | None) -> str:
        if self.users.get(user) != password:
            raise SqlError(LOGIN_FAILED, f"Login failed for user '{user}'.", severity=14)
        database = database or self.default_database
        if database.lower() not in {d.lower() for d in self.databases}:
            raise SqlError(
                DATABASE_UNAVAILABLE,
                f'Cannot open database "{database}" requested by the login. The login failed.',
                severity=11,
            )
        return database

    def execute(self, sql: str, params: Mapping[str, object], session: Session) -> Iterator[ResultSet]:
        conn = session.state.get("sqlite")
        if conn is None:
            conn = session.state["sqlite"] = self.store.connect()
        for statement in tsql.parse(sql):
            yield self._statement(tsql.bind(statement, params), session, conn)

    # -- statements ------------------------------------------------------------------------------

    def _statement(self, statement: exp.Expression, session: Session, conn: sqlite3.Connection) -> ResultSet:
        text = statement.sql("tsql")
        if _NO_RESULT.match(text) or isinstance(statement, _NO_RESULT_NODES):
            return ResultSet(rowcount=None)
        for pattern, (name, sql_type, value) in _CANNED:
            if pattern.search(text):
                return ResultSet([ColumnSpec(name, sql_type)], [(value,)])
        if _SESSION_QUERY.match(text):
            value = session.database if "db_name" in text.lower() else session.spid
            return ResultSet([ColumnSpec("", "nvarchar" if isinstance(value, str) else "int")], [(value,)])
        if not isinstance(statement, exp.Select | exp.Union):
            raise SqlError(
                INVALID_OBJECT, f"The emulated Historian runs SELECT statements only, not: {text[:200]}"
            )
        if isinstance(statement, exp.Select) and tsql.history_table(statement) is not None:
            return self._history(statement, conn)
        return self._run(conn, statement, {})

    def _history(self, select: exp.Select, conn: sqlite3.Connection) -> ResultSet:
        query = tsql.split_history_query(select)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        request = query.request
        self.history_queries.append(request)
        info = self.store.tag_info(conn, request.tags)
        bounds = retrieval_bounds(request, self.server_zone)
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS History ({', '.join(_HISTORY_NAMES)})")
        conn.execute("DELETE FROM temp.History")
        retrieved = [
            r
            for tag in request.tags
            if tag in info  # a tag the Historian does not know returns no row
            for r in retrieve(tag, self.store.points(conn, tag, *bounds), request, self.server_zone)
        ]
        self.synthetic_rows += sum(
            r.quality == QUALITY_INITIAL or r.quality_detail == QD_NO_DATA for r in retrieved
        )
        rows = (_history_row(r, request, info.get(r.tag), self.server_zone) for r in retrieved)
        marks = ",".join("?" * len(_HISTORY_NAMES))
        conn.execute("BEGIN")
        try:
            conn.executemany(f"INSERT INTO temp.History VALUES ({marks})", rows)
        except ValueError as err:  # a retrieval option the rules refuse (mode, version, zone)
            raise SqlError(tsql.HISTORIAN_ERROR, str(err)) from err
        finally:
            conn.execute("COMMIT")
        return self._run(conn, query.residual, {})

    def _run(self, conn: sqlite3.Connection, statement: exp.Expression, _params) -> ResultSet:
        sql = tsql.to_sqlite(statement)
        try:
            cursor = conn.execute(sql)
        except sqlite3.OperationalError as err:
            missing = re.search(r"no such table: (\S+)", str(err))
            if missing:
                raise SqlError(INVALID_OBJECT, f"Invalid object name '{missing.group(1)}'.") from err
            raise SqlError(tsql.SYNTAX_ERROR, f"{err} (in: {sql[:300]})") from err
        names = [d[0] for d in cursor.description or ()]
        if isinstance(statement, exp.Select) and len(statement.expressions) == len(names):
            # SQL Server names an unaliased expression '' (SQLite names it after its text)
            names = [
                e.alias_or_name if isinstance(e, exp.Alias | exp.Column) else ""
                for e in statement.expressions
            ]
        rows = cursor.fetchall()
        specs = [_spec(name, i, rows) for i, name in enumerate(names)]
        typed = [tuple(_typed(v, s) for v, s in zip(row, specs, strict=True)) for row in rows]
        return ResultSet(specs, typed)


def _history_row(r: Row, request: Request, info: tuple | None, server_zone: str) -> tuple:
    """The 33 History columns of a retrieved row: options echo the request, as AVEVA's do."""
    key, unit, interpolation = info or (None, None, None)
    values = {
        "DateTime": _iso(r.time),
        "TagName": r.tag,
        "Value": r.value,
        "VValue": r.vvalue,
        "Quality": r.quality,
        "QualityDetail": r.quality_detail,
        "OPCQuality": r.opc_quality,
        "wwTagKey": key,
        "wwRowCount": 0,
        "wwResolution": request.resolution_ms or 0,
        "wwEdgeDetection": "None",
        "wwRetrievalMode": request.mode,
        "wwTimeDeadband": 0,
        "wwValueDeadband": 0.0,
        "wwTimeZone": request.time_zone or server_zone,
        "wwVersion": request.version,
        "wwCycleCount": request.cycle_count or 0,
        "wwTimeStampRule": "Start",
        "wwInterpolationType": interpolation,
        "wwQualityRule": "Extended",
        "wwStateCalc": "None",
        "StateTime": None,
        "PercentGood": 0.0 if r.value is None and r.vvalue is None else 100.0,
        "wwParameters": None,
        "StartDateTime": _iso(r.stored_time),
        "SourceTag": None,
        "SourceServer": None,
        "wwFilter": "NoFilter",
        "wwValueSelector": "Auto",
        "wwMaxStates": 10,
        "wwOption": None,
        "wwExpression": None,
        "wwUnit": unit,
    }
    return tuple(values[n] for n in _HISTORY_NAMES)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def _spec(name: str, index: int, rows: list) -> ColumnSpec:
    known = COLUMN_SPECS.get(name.lower())
    if known is not None:
        return ColumnSpec(name, known.sql_type, known.length, True)
    sample = next((r[index] for r in rows if r[index] is not None), None)
    if isinstance(sample, bool | int):
        return ColumnSpec(name, "int" if abs(sample) < 2**31 else "bigint")
    if isinstance(sample, float):
        return ColumnSpec(name, "float")
    return ColumnSpec(name, "nvarchar", 4000)


def _typed(value, spec: ColumnSpec):
    if value is not None and spec.sql_type == "datetime2" and isinstance(value, str):
        return datetime.fromisoformat(value)
    if value is not None and spec.sql_type == "int" and not isinstance(value, int):
        return int(value)
    if value is not None and spec.sql_type == "float" and not isinstance(value, float):
        return float(value)
    return value
