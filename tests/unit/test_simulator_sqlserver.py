"""The simulator and the SQL Server init of docker-compose's ``historian-init``, down to the T-SQL.

No SQL Server runs here, so pymssql's ``connect`` is replaced by a recording DB-API connection:
everything above the wire (SQLAlchemy's mssql dialect, the simulator's DDL and batched INSERTs, the
init's statements) runs for real, and the tests read the exact SQL and parameters it would send.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import pymssql
import pytest

from airflow_backfill_provider.testing import sqlserver
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

# What SQLAlchemy's mssql dialect asks a new connection, answered as a SQL Server 2022 would.
_ANSWERS = {
    "@@version": "Microsoft SQL Server 2022 (RTM-CU16) (KB5048033) - 16.0.4165.4 (X64)",
    "schema_name()": "dbo",
    "as nvarchar(max)": "test max support",
}
# SQL Server refuses a statement with more than 2,100 parameters, and a VALUES list of more than 1,000 rows.
MAX_PARAMETERS = 2100
MAX_VALUES_ROWS = 1000


class _Cursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn, self.rows, self.description, self.rowcount = conn, [], None, -1

    def execute(self, sql, params=None):
        self.conn.calls.append((sql, params))
        self.rows, self.description = [], None
        low = sql.lower()
        answer = next((a for q, a in _ANSWERS.items() if q in low), None)
        if answer is not None or low.lstrip().startswith("select"):
            self.rows = [] if answer is None else [(answer,)]
            self.description = [("c", None, None, None, None, None, None)]

    def executemany(self, sql, seq):
        for params in seq:
            self.execute(sql, params)

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self):
        rows, self.rows = self.rows, []
        return rows

    def fetchmany(self, size=1):
        rows, self.rows = self.rows[:size], self.rows[size:]
        return rows

    def close(self):
        pass


class FakeConnection:
    """A pymssql connection that records each statement and answers the dialect's start-up queries."""

    def __init__(self, **kwargs) -> None:
        self.kwargs, self.calls = kwargs, []

    def cursor(self):
        return _Cursor(self)

    def commit(self):
        self.calls.append(("COMMIT", None))

    def rollback(self):
        pass

    def close(self):
        pass


@pytest.fixture
def connections(monkeypatch) -> list[FakeConnection]:
    made: list[FakeConnection] = []

    def connect(*args, **kwargs):
        made.append(FakeConnection(**kwargs))
        return made[-1]

    monkeypatch.setattr(pymssql, "connect", connect)
    return made


def _statements(connections) -> list[tuple[str, object]]:
    return [call for conn in connections for call in conn.calls]


def _history_inserts(calls):
    return [(sql, params) for sql, params in calls if sql.startswith("INSERT INTO [History]")]


def test_simulator_creates_the_tables_sql_server_needs(connections):
    simulate(
        "mssql+pymssql://sa:pw@db:1433/Runtime",
        SimulatorConfig(start=datetime(2025, 1, 1), end=datetime(2025, 1, 1, 2), tags=6),
        replace=True,
    )
    ddl = [sql for sql, _ in _statements(connections) if sql.lstrip().startswith(("CREATE", "DROP"))]
    tagref = next(s for s in ddl if "CREATE TABLE [TagRef]" in s)
    history = next(s for s in ddl if "CREATE TABLE [History]" in s)
    # the hook's WHERE compares DATETIME2 bounds; TagName is indexable (NVARCHAR(max) is not)
    assert "[TagName] NVARCHAR(256) NOT NULL" in tagref and "PRIMARY KEY ([TagName])" in tagref
    assert "[DateTime] DATETIME2(7) NOT NULL" in history
    assert "[StartDateTime] DATETIME2(7) NULL" in history
    # constant retrieval options are server defaults, so a plain Full/Latest/UTC query finds the rows
    for column, default in [
        ("wwRetrievalMode", "'Full'"),
        ("wwVersion", "'Latest'"),
        ("wwTimeZone", "'UTC'"),
    ]:
        assert re.search(rf"\[{column}\] NVARCHAR\(max\) NULL DEFAULT {default}", history), column
    assert history.count("\n\t[") == 33  # all 33 History columns
    assert ddl[-1] == "CREATE INDEX [IX_History_TagName_DateTime] ON [History] ([TagName], [DateTime])"


def test_simulator_loads_sql_server_in_batched_inserts_within_its_limits(connections):
    config = SimulatorConfig(
        start=datetime(2025, 1, 1),
        end=datetime(2025, 1, 2),
        tags=9,
        rate=60,
        hostile_tags=True,
        slice_rows=5000,
    )
    summary = simulate("mssql+pymssql://sa:pw@db:1433/Runtime", config, replace=True)
    calls = _statements(connections)
    inserts = _history_inserts(calls)
    assert summary.loader == "executemany"
    assert summary.total_rows > MAX_VALUES_ROWS
    rows = 0
    for sql, params in inserts:
        values = sql.count("), (") + 1
        assert len(params) <= MAX_PARAMETERS - 1 and values <= MAX_VALUES_ROWS
        rows += values
        # every value is a parameter: the hostile names never become SQL text
        assert "O'Brien" not in sql and "DROP TABLE x" not in sql
    assert rows == summary.total_rows
    assert len(inserts) > 1  # batched: one statement per row would take hours on a real server
    # pymssql sends a datetime parameter with milliseconds: the simulated instants lose nothing
    instants = [v for _, params in inserts for k, v in params.items() if k.startswith("DateTime__")]
    assert len(instants) == summary.total_rows
    assert all(isinstance(v, datetime) and v.tzinfo is None and v.microsecond % 1000 == 0 for v in instants)
    tag_names = {v for _, params in inserts for k, v in params.items() if k.startswith("TagName__")}
    assert "O'Brien\"; DROP TABLE x --" in tag_names and "Ünïcödé Zone °C" in tag_names
    # one transaction for all of History, and the index only after the last row
    last_insert = max(i for i, (sql, _) in enumerate(calls) if sql.startswith("INSERT INTO [History]"))
    first_insert = min(i for i, (sql, _) in enumerate(calls) if sql.startswith("INSERT INTO [History]"))
    assert not any(sql == "COMMIT" for sql, _ in calls[first_insert:last_insert])
    index = next(i for i, (sql, _) in enumerate(calls) if sql.startswith("CREATE INDEX"))
    assert index > last_insert


def test_setup_statements_quote_names_and_the_password():
    statements = sqlserver.setup_statements("Run]time", "reader'x", "pa'ss]word")
    assert statements == [
        "IF DB_ID(N'Run]time') IS NULL CREATE DATABASE [Run]]time]",
        "IF SUSER_ID(N'reader''x') IS NULL CREATE LOGIN [reader'x] WITH PASSWORD = N'pa''ss]word', "
        "DEFAULT_DATABASE = [Run]]time] ELSE ALTER LOGIN [reader'x] WITH PASSWORD = N'pa''ss]word'",
        "USE [Run]]time]",
        "IF USER_ID(N'reader''x') IS NULL CREATE USER [reader'x] FOR LOGIN [reader'x]",
        "ALTER ROLE [db_datareader] ADD MEMBER [reader'x]",
    ]


def test_setup_without_reader_only_creates_the_database():
    assert sqlserver.setup_statements("Runtime") == ["IF DB_ID(N'Runtime') IS NULL CREATE DATABASE [Runtime]"]
    with pytest.raises(ValueError, match="HISTORIAN_READER_PASSWORD"):
        sqlserver.setup_statements("Runtime", "historian_reader", "")


def test_init_prepares_master_then_loads_runtime_and_prints_no_password(connections, monkeypatch, capsys):
    monkeypatch.setenv("MSSQL_SA_PASSWORD", "Adm1n:p@ss/w'rd")
    monkeypatch.setenv("HISTORIAN_READER_PASSWORD", "R3ader-secret")
    code = sqlserver.main(
        [
            "--host",
            "sqlserver",
            "--",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-01T03:00",
            "--tags",
            "4",
            "--replace",
        ]
    )
    assert code == 0
    setup, *load = connections
    assert setup.kwargs["database"] == "master" and setup.kwargs["autocommit"] is True
    assert setup.kwargs["user"] == "sa" and setup.kwargs["password"] == "Adm1n:p@ss/w'rd"
    assert [sql for sql, _ in setup.calls] == sqlserver.setup_statements(
        "Runtime", "historian_reader", "R3ader-secret"
    )
    # the simulator's engine connects to Runtime as the admin, the password decoded intact from the URL
    assert load and {c.kwargs["database"] for c in load} == {"Runtime"}
    assert {c.kwargs["password"] for c in load} == {"Adm1n:p@ss/w'rd"}
    assert {c.kwargs["host"] for c in load} == {"sqlserver:1433"}
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["url"] == "mssql+pymssql://sa:***@sqlserver:1433/Runtime"
    assert summary["total_rows"] == sum(
        sql.count("), (") + 1 for sql, _ in _history_inserts(_statements(load))
    )


def test_init_refuses_to_start_without_the_passwords(connections, monkeypatch, capsys):
    monkeypatch.delenv("MSSQL_SA_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as exit_:
        sqlserver.main(["--", "--start", "2025-01-01", "--end", "2025-01-02"])
    assert exit_.value.code == 2 and "set MSSQL_SA_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("MSSQL_SA_PASSWORD", "x")
    monkeypatch.delenv("HISTORIAN_READER_PASSWORD", raising=False)
    with pytest.raises(SystemExit):
        sqlserver.main(["--", "--start", "2025-01-01", "--end", "2025-01-02"])
    assert "set HISTORIAN_READER_PASSWORD" in capsys.readouterr().err
    assert connections == []  # nothing reached the server
