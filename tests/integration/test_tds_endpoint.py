"""The TDS endpoint (tests/support/tds) against real SQL Server client drivers.

No SQL Server can run on the test machines, so this endpoint stands in for SQL Server: it speaks
MS-TDS 7.4 on loopback and hands the statements to a backend. These tests drive it with the real
drivers the project uses or may use -- pymssql (FreeTDS db-lib), SQLAlchemy over pymssql,
mssql-python (Microsoft's driver, ODBC Driver 18 inside), pyodbc and arrow-odbc over FreeTDS ODBC,
and arrow-odbc over mssql-python's bundled ODBC Driver 18 -- against a tiny dict-backed backend
defined here, and check types, errors, cancellation, dropped connections and the replay mode.

The endpoint runs in this process, in threads. mssql-python's ``fetchone()``/``fetchmany()`` keep
the GIL while they wait for the network (measured: a Python thread makes no progress meanwhile),
so a fetch that waits for rows the endpoint has not sent yet can deadlock with it; its
``execute()``, ``fetchall()`` and ``arrow()`` do not show this here. Tests read with those, or
fetch rows the endpoint has already sent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.tds import (
    DATABASE_UNAVAILABLE,
    INVALID_OBJECT,
    LOGIN_FAILED,
    ColumnSpec,
    ReplayBackend,
    ResultSet,
    Session,
    SqlError,
    TdsServer,
    encode_result,
)

USER, PASSWORD, DATABASE = "historian", "s3cret!", "Runtime"
FREETDS_ODBC = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so"

TYPED_COLUMNS = [
    ColumnSpec("DateTime", "datetime2"),
    ColumnSpec("TagName", "nvarchar", 100),
    ColumnSpec("Note", "nvarchar", None),
    ColumnSpec("Code", "varchar", 20),
    ColumnSpec("Value", "float"),
    ColumnSpec("Ratio", "real"),
    ColumnSpec("Big", "bigint"),
    ColumnSpec("Quality", "int"),
    ColumnSpec("Small", "smallint"),
    ColumnSpec("Tiny", "tinyint"),
    ColumnSpec("Flag", "bit"),
]
UNICODE_TAG = "Tag-ä€😀"
LONG_NOTE = "Ω" * 6000 + "-end"  # beyond NVARCHAR(4000): only NVARCHAR(MAX) (PLP) carries it
TYPED_ROWS = [
    (
        dt.datetime(2024, 3, 1, 12, 30, 45, 123456),
        UNICODE_TAG,
        LONG_NOTE,
        "café",
        3.25,
        0.5,
        2**53 + 1,
        -42,
        -300,
        255,
        True,
    ),
    (dt.datetime(2024, 3, 1, 12, 31), UNICODE_TAG, None, None, None, None, None, None, None, None, None),
    (dt.datetime(1, 1, 1), UNICODE_TAG, "", "", -1e308, -1.5, -(2**63), -(2**31), -(2**15), 0, False),
    (
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        UNICODE_TAG,
        "x",
        "z",
        1e-300,
        3.0,
        2**63 - 1,
        2**31 - 1,
        2**15 - 1,
        1,
        True,
    ),
]
NUMBERS_COLUMNS = [
    ColumnSpec("n", "int", nullable=False),
    ColumnSpec("t", "datetime2"),
    ColumnSpec("name", "nvarchar", 50),
    ColumnSpec("v", "float"),
]
T0 = dt.datetime(2024, 1, 1)


def number_row(n: int) -> tuple:
    return (n, T0 + dt.timedelta(seconds=n), f"Tag{n % 100}", n / 4)


# Statements the drivers send by themselves, with what SQL Server would answer (the real backend
# must answer them too; see the docstring of tests.support.tds.server).
HOUSEKEEPING = {
    "select @@version": ResultSet(
        [ColumnSpec("", "nvarchar", 300)], [("Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64)",)]
    ),
    "select schema_name()": ResultSet([ColumnSpec("", "nvarchar", 128)], [("dbo",)]),
    "select name from sys.system_views where name in ('dm_exec_sessions', 'dm_pdw_nodes_exec_sessions')": ResultSet(
        [ColumnSpec("name", "nvarchar", 128)], [("dm_exec_sessions",)]
    ),
    "select cast('test max support' as nvarchar(max))": ResultSet(
        [ColumnSpec("", "nvarchar", None)], [("test max support",)]
    ),
    "select 1 from fn_listextendedproperty(default, default, default, default, default, default, default)": ResultSet(
        [ColumnSpec("", "int")], []
    ),
}


# pyodbc asks ODBC's SQLGetTypeInfo on connect, which FreeTDS and ODBC Driver 18 turn into
# "sp_datatype_info_100 <type>,3"; pyodbc takes the first row's PRECISION as the largest varchar,
# nvarchar, varbinary and, for 93 (timestamp), the digits it sends of a datetime parameter
# (datetime's 23 -> 3 fractional digits, as against a real SQL Server). Rows as SQL Server lists them.
_TYPEINFO_COLUMNS = [
    ColumnSpec(name, kind, 128)
    for name, kind in [
        ("TYPE_NAME", "varchar"),
        ("DATA_TYPE", "smallint"),
        ("PRECISION", "int"),
        ("LITERAL_PREFIX", "varchar"),
        ("LITERAL_SUFFIX", "varchar"),
        ("CREATE_PARAMS", "varchar"),
        ("NULLABLE", "smallint"),
        ("CASE_SENSITIVE", "smallint"),
        ("SEARCHABLE", "smallint"),
        ("UNSIGNED_ATTRIBUTE", "smallint"),
        ("MONEY", "smallint"),
        ("AUTO_INCREMENT", "smallint"),
        ("LOCAL_TYPE_NAME", "varchar"),
        ("MINIMUM_SCALE", "smallint"),
        ("MAXIMUM_SCALE", "smallint"),
        ("SQL_DATA_TYPE", "smallint"),
        ("SQL_DATETIME_SUB", "smallint"),
        ("NUM_PREC_RADIX", "int"),
        ("INTERVAL_PRECISION", "smallint"),
        ("USERTYPE", "smallint"),
    ]
]
_TYPEINFO_ROWS = {
    12: [
        (
            "varchar",
            12,
            8000,
            "'",
            "'",
            "max length",
            1,
            0,
            3,
            None,
            0,
            None,
            "varchar",
            None,
            None,
            12,
            None,
            None,
            None,
            2,
        )
    ],
    -9: [
        (
            "nvarchar",
            -9,
            4000,
            "N'",
            "'",
            "max length",
            1,
            0,
            3,
            None,
            0,
            None,
            "nvarchar",
            None,
            None,
            -9,
            None,
            None,
            None,
            0,
        )
    ],
    -3: [
        (
            "varbinary",
            -3,
            8000,
            "0x",
            None,
            "max length",
            1,
            0,
            2,
            None,
            0,
            None,
            "varbinary",
            None,
            None,
            -3,
            None,
            None,
            None,
            4,
        )
    ],
    93: [
        ("datetime", 93, 23, "'", "'", None, 1, 0, 3, None, 0, None, "datetime", 3, 3, 9, 3, None, None, 12),
        (
            "smalldatetime",
            93,
            16,
            "'",
            "'",
            None,
            1,
            0,
            3,
            None,
            0,
            None,
            "smalldatetime",
            0,
            0,
            9,
            3,
            None,
            None,
            22,
        ),
        (
            "datetime2",
            93,
            27,
            "'",
            "'",
            "scale",
            1,
            0,
            3,
            None,
            0,
            None,
            "datetime2",
            0,
            7,
            9,
            3,
            None,
            None,
            0,
        ),
    ],
}


class DictBackend:
    """A tiny backend: a few tables in Python, matched by regular expressions on the statement.

    Parameters arrive either as RPC parameters (``@P1``...) or, from pymssql, substituted into the
    text as literals; :meth:`_arg` accepts both.
    """

    def __init__(self) -> None:
        self.users = {USER: PASSWORD}
        self.databases = {DATABASE, "master"}
        self.executed: list[str] = []

    def login(self, user: str, password: str, database: str | None) -> str:
        if self.users.get(user) != password:
            raise SqlError(LOGIN_FAILED, f"Login failed for user '{user}'.", severity=14)
        if database and database not in self.databases:
            raise SqlError(
                DATABASE_UNAVAILABLE,
                f'Cannot open database "{database}" requested by the login. The login failed.',
                severity=11,
            )
        return database or DATABASE

    def execute(self, sql: str, params: Mapping[str, object], session: Session) -> Iterator[ResultSet]:
        self.executed.append(sql)
        norm = " ".join(sql.split()).lower().rstrip(";")
        if norm in HOUSEKEEPING:
            yield HOUSEKEEPING[norm]
            return
        if m := re.fullmatch(r"sp_datatype_info_100 (-?\d+),3", norm):
            yield ResultSet(_TYPEINFO_COLUMNS, _TYPEINFO_ROWS.get(int(m.group(1)), []))
            return
        if "transaction_isolation_level" in norm:
            yield ResultSet([ColumnSpec("TRANSACTION_ISOLATION_LEVEL", "varchar", 30)], [("READ COMMITTED",)])
            return
        if m := re.fullmatch(r"select top (\d+) \* from alltypes", norm):
            yield ResultSet(TYPED_COLUMNS, TYPED_ROWS[: int(m.group(1))])
            return
        if m := re.fullmatch(r"select \* from alltypes where tagname = (.+)", norm):
            tag = self._arg(sql, m.group(1), params)
            yield ResultSet(TYPED_COLUMNS, [r for r in TYPED_ROWS if r[1] == tag])
            return
        if m := re.fullmatch(r"select n, t, name, v from numbers where n < (.+)", norm):
            limit = int(self._arg(sql, m.group(1), params))
            yield ResultSet(NUMBERS_COLUMNS, (number_row(n) for n in range(limit)))  # a generator: streamed
            return
        if norm.startswith("select * from echo"):  # one row per parameter: its name, type, repr
            rows = [(k, type(v).__name__, repr(v)) for k, v in params.items()]
            cols = [
                ColumnSpec("name", "nvarchar", 30),
                ColumnSpec("type", "nvarchar", 30),
                ColumnSpec("value", "nvarchar", None),
            ]
            yield ResultSet(cols, rows)
            return
        if norm.startswith("select * from slow"):
            session.cancelled.wait(10)  # a slow query; an ATTENTION ends the wait early
            yield ResultSet([ColumnSpec("x", "int")], [(1,)])
            return
        if norm == "select * from endless":  # 10 million rows unless the client cancels
            yield ResultSet(NUMBERS_COLUMNS, self._counted_rows(10_000_000))
            return
        if norm == "select * from breaks":
            yield ResultSet([ColumnSpec("x", "int")], self._breaking_rows())
            return
        if norm == "select 1 as a; select 2 as b":
            yield ResultSet([ColumnSpec("a", "int")], [(1,)])
            yield ResultSet([ColumnSpec("b", "int")], [(2,)])
            return
        if m := re.match(r"select \* from (\w+)", norm):
            raise SqlError(INVALID_OBJECT, f"Invalid object name '{m.group(1)}'.")
        # SET ..., use [db], BEGIN/COMMIT/ROLLBACK TRAN, sp_datatype_info_100, ...: no result set.
        yield ResultSet(rowcount=None)

    def _counted_rows(self, limit: int) -> Iterator[tuple]:
        self.produced = 0
        try:
            for n in range(limit):
                self.produced = n + 1
                yield number_row(n)
        finally:
            self.closed_early = self.produced < limit

    @staticmethod
    def _breaking_rows() -> Iterator[tuple]:
        yield (1,)
        yield (2,)
        raise SqlError(245, "Conversion failed when converting the varchar value 'x' to data type int.")

    @staticmethod
    def _arg(sql: str, token: str, params: Mapping[str, object]) -> object:
        token = token.strip()
        if token.startswith("@"):
            return params[next(k for k in params if k.lower() == token)]
        if m := re.search(r"n?'((?:[^']|'')*)'\s*;?\s*$", sql, re.IGNORECASE):  # a literal, original case
            return m.group(1).replace("''", "'")
        return int(token)


@pytest.fixture(scope="module")
def backend() -> DictBackend:
    return DictBackend()


@pytest.fixture(scope="module")
def server(backend: DictBackend) -> Iterator[TdsServer]:
    with TdsServer(backend) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _disarm(server: TdsServer) -> Iterator[None]:
    yield
    server.drop_after_rows(None)


# --- connecting with each driver ---


def pymssql_connect(server: TdsServer, **kw: object):
    import pymssql

    args = {
        "server": "127.0.0.1",
        "port": server.port,
        "user": USER,
        "password": PASSWORD,
        "database": DATABASE,
    }
    args.update(kw)
    return pymssql.connect(**args)


def mssql_python_connect(
    server: TdsServer,
    *,
    autocommit: bool = True,
    password: str = PASSWORD,
    database: str = DATABASE,
    extra: str = "",
):
    import mssql_python

    cs = f"Server=127.0.0.1,{server.port};Database={database};UID={USER};PWD={password};Encrypt=no;{extra}"
    return mssql_python.connect(cs, autocommit=autocommit)


def freetds_odbc_cs(server: TdsServer, *, password: str = PASSWORD, database: str = DATABASE) -> str:
    return f"DRIVER={FREETDS_ODBC};SERVER=127.0.0.1;PORT={server.port};UID={USER};PWD={password};DATABASE={database};TDS_Version=7.4"


def msodbc18_driver() -> str | None:
    import mssql_python_odbc  # noqa: F401  (the wheel that bundles ODBC Driver 18)

    root = Path(mssql_python_odbc.__file__).parent / "libs" / "linux" / "debian_ubuntu" / "x86_64" / "lib"
    found = sorted(root.glob("libmsodbcsql-18*.so*"))
    return str(found[0]) if found else None


def pyodbc_connect(server: TdsServer, *, autocommit: bool = True, **kw: str):
    import pyodbc

    # make test installs it (scripts/system-deps.sh): its absence is a broken setup, not a skip
    assert Path(FREETDS_ODBC).exists(), (
        f"FreeTDS's ODBC driver {FREETDS_ODBC} is missing: run make system-deps"
    )
    return pyodbc.connect(freetds_odbc_cs(server, **kw), autocommit=autocommit)


def check_typed_rows(rows: list) -> None:
    """The four rows of TYPED_ROWS, read back by any driver (as tuples or Row objects)."""
    assert len(rows) == 4
    got = [tuple(r) for r in rows]
    assert got[0][0] == TYPED_ROWS[0][0] and got[0][1] == UNICODE_TAG
    assert got[0][2] == LONG_NOTE and got[0][3] == "café"
    assert got[0][4:7] == (3.25, 0.5, 2**53 + 1)
    assert got[0][7:11] == (-42, -300, 255, True)
    assert got[1][2:] == (None,) * 9
    assert got[2][0] == dt.datetime(1, 1, 1) and got[2][2] == "" and got[2][4] == -1e308
    assert got[2][6:11] == (-(2**63), -(2**31), -(2**15), 0, False)
    assert got[3][0] == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert got[3][6:10] == (2**63 - 1, 2**31 - 1, 2**15 - 1, 1)


# --- pymssql (FreeTDS db-lib; SQL_BATCH only, parameters substituted by the client) ---


def test_pymssql_types_unicode_nulls_and_max(server: TdsServer) -> None:
    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = %s", (UNICODE_TAG,))
        check_typed_rows(cur.fetchall())
        assert [d[0] for d in cur.description] == [c.name for c in TYPED_COLUMNS]
    login = server.logins[-1]
    assert (login.user, login.database, login.tds_version, login.ok) == (USER, DATABASE, 0x74000004, True)
    assert login.app.startswith("pymssql")


def test_pymssql_connect_statements_reach_the_backend(server: TdsServer) -> None:
    before = len(server.requests)
    with pymssql_connect(server) as conn:
        conn.cursor().execute("SELECT * FROM alltypes WHERE TagName = %s", ("none",))
    sent = [r.sql for r in list(server.requests)[before:]]
    assert sent[0].startswith("SET ARITHABORT ON;SET CONCAT_NULL_YIELDS_NULL ON;")
    assert sent[1:3] == ["use [Runtime]", "BEGIN TRAN"]
    assert sent[3] == "SELECT * FROM alltypes WHERE TagName = N'none'"


def test_pymssql_large_result_streams(server: TdsServer) -> None:
    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < %d", (100_000,))
        count = 0
        for row in cur:
            if count in (0, 99_999):
                assert row == number_row(count)
            count += 1
        assert count == 100_000


def test_pymssql_several_result_sets(server: TdsServer) -> None:
    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 AS a; SELECT 2 AS b")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        assert cur.fetchall() == [(2,)]
        assert not cur.nextset()


def test_pymssql_wrong_password_and_unknown_database(server: TdsServer) -> None:
    import pymssql

    # 4060 (severity 11) first: pymssql keeps a failed login's message in process-wide state and a
    # later, less severe one does not replace an earlier 18456 (severity 14).
    with pytest.raises(pymssql.OperationalError, match=r'4060.*Cannot open database "Nope"'):
        pymssql_connect(server, database="Nope")
    with pytest.raises(pymssql.OperationalError, match=r"18456.*Login failed for user 'historian'"):
        pymssql_connect(server, password="wrong")
    assert [r.ok for r in list(server.logins)[-2:]] == [False, False]


def test_pymssql_backend_error_then_connection_usable(server: TdsServer) -> None:
    import pymssql

    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        with pytest.raises(pymssql.ProgrammingError, match=r"208.*Invalid object name 'nosuchtable'"):
            cur.execute("SELECT * FROM nosuchtable")
        with pytest.raises(pymssql.OperationalError, match="245.*Conversion failed"):
            cur.execute("SELECT * FROM breaks")
            cur.fetchall()
        cur.execute("SELECT 1 AS a; SELECT 2 AS b")
        assert cur.fetchall() == [(1,)]


def test_pymssql_query_timeout_cancels(server: TdsServer) -> None:
    import pymssql

    with pymssql_connect(server, timeout=1) as conn:
        cur = conn.cursor()
        started = time.monotonic()
        with pytest.raises(pymssql.OperationalError, match="(?i)timeout|timed out"):
            cur.execute("SELECT * FROM slow")
        assert time.monotonic() - started < 8  # the ATTENTION ended the backend's 10 s wait


def test_pymssql_connection_dropped_mid_read(server: TdsServer) -> None:
    import pymssql

    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        server.drop_after_rows(500)
        with pytest.raises(pymssql.OperationalError):
            cur.execute("SELECT n, t, name, v FROM numbers WHERE n < %d", (100_000,))
            cur.fetchall()


def test_sqlalchemy_pymssql_engine(server: TdsServer) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"mssql+pymssql://{USER}:{PASSWORD}@127.0.0.1:{server.port}/{DATABASE}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT * FROM alltypes WHERE TagName = :tag"), {"tag": UNICODE_TAG}
            ).fetchall()
            check_typed_rows(rows)
            assert engine.dialect.server_version_info[0] == 16
            assert engine.dialect.default_schema_name == "dbo"
    finally:
        engine.dispose()


# --- mssql-python (Microsoft's driver, ODBC Driver 18 inside: RPC sp_prepexec, TM requests) ---


@pytest.mark.parametrize("autocommit", [True, False])
def test_mssql_python_types_and_transactions(server: TdsServer, autocommit: bool) -> None:
    before = len(server.requests)
    conn = mssql_python_connect(server, autocommit=autocommit)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        check_typed_rows(cur.fetchall())
        conn.commit()
    finally:
        conn.close()
    sent = list(server.requests)[before:]
    rpc = [r for r in sent if r.kind.startswith("rpc:")]
    assert rpc[0].kind == "rpc:sp_prepexec" and rpc[0].sql == "SELECT * FROM alltypes WHERE TagName = @P1"
    assert rpc[0].params == {"@P1": UNICODE_TAG}
    kinds = [r.kind for r in sent if r.kind != "batch"]
    if autocommit:  # no transaction around the statement (close() then sends BEGIN + ROLLBACK)
        assert kinds[:2] == ["rpc:sp_prepexec", "rpc:sp_unprepare"]
    else:  # TM_BEGIN_XACT (5) before the statement, TM_COMMIT_XACT (7) for commit()
        assert kinds[:3] == ["tm:5", "rpc:sp_prepexec", "tm:7"]


def test_mssql_python_arrow_fetch_large(server: TdsServer) -> None:
    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 100_000)
        table = cur.arrow()
        assert table.num_rows == 100_000
        assert table.column("n").to_pylist()[-1] == 99_999
        assert table.column("t")[12_345].as_py() == number_row(12_345)[1]
        assert table.column("name")[7].as_py() == "Tag7"
    finally:
        conn.close()


def test_mssql_python_typed_parameters(server: TdsServer) -> None:
    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        values = (
            7,
            2**40,
            1.5,
            True,
            Decimal("12.345"),
            dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
            dt.date(2024, 5, 6),
            "ä€😀",
            "x" * 5000,
            b"\x00\x01",
            uuid.UUID(int=1),
            None,
        )
        cur.execute("SELECT * FROM echo WHERE x IN (" + ", ".join("?" * len(values)) + ")", *values)
        rows = cur.fetchall()
    finally:
        conn.close()
    got = {r[0]: r[2] for r in rows}
    assert got["@P1"] == "7" and got["@P2"] == repr(2**40) and got["@P3"] == "1.5"
    assert got["@P4"] == "True" and got["@P5"] == repr(Decimal("12.345"))
    assert got["@P6"] == repr(values[5]) and got["@P7"] == repr(values[6])
    assert got["@P8"] == repr("ä€😀") and got["@P9"] == repr("x" * 5000)
    assert (
        got["@P10"] == repr(b"\x00\x01") and got["@P11"] == repr(uuid.UUID(int=1)) and got["@P12"] == "None"
    )


def test_mssql_python_errors(server: TdsServer) -> None:
    import mssql_python

    with pytest.raises(mssql_python.Error, match="Login failed for user 'historian'"):
        mssql_python_connect(server, password="wrong")
    with pytest.raises(mssql_python.Error, match='Cannot open database "Nope"'):
        mssql_python_connect(server, database="Nope")
    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        with pytest.raises(mssql_python.Error, match="Invalid object name 'nosuchtable'"):
            cur.execute("SELECT * FROM nosuchtable")
        with pytest.raises(mssql_python.Error, match="Conversion failed"):
            cur.execute("SELECT * FROM breaks")
            cur.fetchall()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4
    finally:
        conn.close()


def test_mssql_python_query_timeout(server: TdsServer) -> None:
    import mssql_python

    conn = mssql_python_connect(server)
    try:
        conn.timeout = 1
        cur = conn.cursor()
        started = time.monotonic()
        with pytest.raises(mssql_python.Error, match="(?i)timeout"):
            cur.execute("SELECT * FROM slow")
        assert time.monotonic() - started < 8
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4  # the same connection, usable after the cancel
    finally:
        conn.close()


def test_mssql_python_connection_dropped_mid_read(server: TdsServer) -> None:
    import mssql_python

    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        dropped = server.drop_after_rows(500)
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 100_000)
        # fetchone() holds the GIL while it waits for the network: let this in-process server close
        # the socket first, or the two can deadlock (see the module docstring).
        assert dropped.wait(10)
        with pytest.raises(mssql_python.Error, match="Communication link failure|TCP Provider"):
            while cur.fetchone() is not None:
                pass
    finally:
        with contextlib.suppress(mssql_python.Error):
            conn.close()


@pytest.mark.parametrize("fetch", ["fetchall", "arrow", "arrow_reader"])
def test_mssql_python_bulk_fetch_at_a_dropped_connection(server: TdsServer, fetch: str) -> None:
    """mssql-python 1.16's defect, pinned: fetchall(), arrow() and arrow_reader() return the 500 rows
    read before the drop as if that were the whole result (ODBC Driver 18 itself reports 08S01, see
    pyodbc). A round trip on the connection afterwards raises: the provider's reader relies on it."""
    import mssql_python

    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        dropped = server.drop_after_rows(500)
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 100_000)
        assert dropped.wait(10)
        if fetch == "arrow_reader":
            with cur.arrow_reader(100) as reader:
                rows = sum(batch.num_rows for batch in reader)
        else:
            got = getattr(cur, fetch)()
            rows = got.num_rows if fetch == "arrow" else len(got)
        assert rows == 500  # truncated, without an error
        cur.close()
        with pytest.raises(mssql_python.Error, match="Communication link failure"):
            conn.cursor().execute("SELECT 1")
    finally:
        with contextlib.suppress(mssql_python.Error):
            conn.close()


@pytest.mark.parametrize("size", [512, 32767])
def test_mssql_python_packet_size_negotiated(server: TdsServer, size: int) -> None:
    conn = mssql_python_connect(server, extra=f"Packet Size={size}")
    try:
        cur = conn.cursor()
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 20_000)
        assert len(cur.fetchall()) == 20_000
    finally:
        conn.close()
    assert server.logins[-1].packet_size == size


# --- pyodbc over FreeTDS ODBC (RPC sp_prepexec; long text parameters as NTEXT) ---


def test_pyodbc_freetds_types(server: TdsServer) -> None:
    with pyodbc_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        check_typed_rows(cur.fetchall())
    call = [r for r in server.requests if r.kind.startswith("rpc:")][-1]
    assert call.kind == "rpc:sp_prepexec" and call.params == {"@P1": UNICODE_TAG}


def test_pyodbc_freetds_typed_parameters(server: TdsServer) -> None:
    values = (
        7,
        2**40,
        1.5,
        True,
        Decimal("-12.345"),
        dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
        dt.date(2024, 5, 6),
        dt.time(7, 8, 9),
        "ä€😀",
        "y" * 5000,
        b"\x00\x01",
        None,
    )
    with pyodbc_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM echo WHERE x IN (" + ", ".join("?" * len(values)) + ")", *values)
        got = {r[0]: r[2] for r in cur.fetchall()}
    assert [got[f"@P{i + 1}"] for i in range(len(values))] == [repr(v) for v in values]
    call = [r for r in server.requests if r.kind == "rpc:sp_prepexec"][-1]
    assert call.types["@P9"] == 0xE7  # NVARCHAR
    assert call.types["@P10"] in (
        0x63,
        0xE7,
    )  # NTEXT, or NVARCHAR(MAX) (PLP) once pyodbc knows nvarchar's 4000


def test_pyodbc_freetds_large_and_errors(server: TdsServer) -> None:
    import pyodbc

    with pyodbc_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 100_000)
        count = 0
        while batch := cur.fetchmany(10_000):
            count += len(batch)
        assert count == 100_000
        with pytest.raises(pyodbc.ProgrammingError, match="Invalid object name 'nosuchtable'"):
            cur.execute("SELECT * FROM nosuchtable")
        with pytest.raises(pyodbc.Error, match="Conversion failed"):
            cur.execute("SELECT * FROM breaks")
            cur.fetchall()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4
    with pytest.raises(pyodbc.Error, match="Login failed for user 'historian'"):
        pyodbc_connect(server, password="wrong")
    with pytest.raises(pyodbc.Error, match='Cannot open database "Nope"'):
        pyodbc_connect(server, database="Nope")


def test_pyodbc_freetds_query_timeout(server: TdsServer) -> None:
    import pyodbc

    with pyodbc_connect(server) as conn:
        conn.timeout = 1
        cur = conn.cursor()
        started = time.monotonic()
        with pytest.raises(pyodbc.Error, match="(?i)HYT00|timeout"):
            cur.execute("SELECT * FROM slow")
        assert time.monotonic() - started < 8
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4


def test_pyodbc_freetds_manual_commit(server: TdsServer) -> None:
    before = len(server.requests)
    with pyodbc_connect(server, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4
        conn.commit()
    kinds = [r.kind for r in list(server.requests)[before:]]
    assert "tm:5" in kinds and "tm:7" in kinds  # FreeTDS ODBC uses Transaction Manager requests too


def test_pyodbc_freetds_connection_dropped_mid_read(server: TdsServer) -> None:
    import pyodbc

    with pyodbc_connect(server) as conn:
        cur = conn.cursor()
        server.drop_after_rows(500)
        with pytest.raises(pyodbc.Error):
            cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 100_000)
            cur.fetchall()


# --- arrow-odbc over FreeTDS ODBC and over mssql-python's bundled ODBC Driver 18 ---


def arrow_odbc_drivers(server: TdsServer) -> list[tuple[str, str]]:
    out = [("freetds", freetds_odbc_cs(server))]
    driver = msodbc18_driver()
    if driver:
        out.append(
            (
                "msodbc18",
                f"DRIVER={driver};SERVER=127.0.0.1,{server.port};UID={USER};PWD={PASSWORD};DATABASE={DATABASE};Encrypt=no",
            )
        )
    return out


def test_arrow_odbc_types_and_large(server: TdsServer) -> None:
    import arrow_odbc

    for name, cs in arrow_odbc_drivers(server):
        # No unicode parameter here: arrow-odbc binds text parameters as narrow strings, which
        # FreeTDS converts to the server's code page (1252) and refuses for '😀' (error 2402). And
        # only two rows: arrow-odbc reads datetime2(7) as nanoseconds, so year 1 and 9999 overflow.
        reader = arrow_odbc.read_arrow_batches_from_odbc(
            "SELECT TOP 2 * FROM alltypes", cs, max_text_size=20_000
        )
        rows = [tuple(r.values()) for b in reader for r in b.to_pylist()]
        assert len(rows) == 2, name
        assert rows[0][1:4] == (UNICODE_TAG, LONG_NOTE, "café"), name
        assert rows[0][0].to_pydatetime() == TYPED_ROWS[0][0], name
        assert rows[1][2:] == (None,) * 9, name
        assert rows[0][4:11] == (3.25, 0.5, 2**53 + 1, -42, -300, 255, True), name
        reader = arrow_odbc.read_arrow_batches_from_odbc(
            "SELECT n, t, name, v FROM numbers WHERE n < ?", cs, parameters=["100000"], batch_size=50_000
        )
        total = sum(b.num_rows for b in reader)
        assert total == 100_000, name


def test_arrow_odbc_errors_and_timeout(server: TdsServer) -> None:
    import arrow_odbc

    for name, cs in arrow_odbc_drivers(server):
        with pytest.raises(arrow_odbc.Error, match="Invalid object name 'nosuchtable'"):
            arrow_odbc.read_arrow_batches_from_odbc("SELECT * FROM nosuchtable", cs)
        started = time.monotonic()
        with pytest.raises(arrow_odbc.Error, match="(?i)HYT00|timeout"):
            arrow_odbc.read_arrow_batches_from_odbc("SELECT * FROM slow", cs, query_timeout_sec=1)
        assert time.monotonic() - started < 8, name


# --- cancelling a result mid-stream (ATTENTION while rows are being sent) ---


def test_cancel_mid_stream_pyodbc(server: TdsServer, backend: DictBackend) -> None:
    with pyodbc_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM endless")
        assert len(cur.fetchmany(1000)) == 1000
        cur.cancel()  # FreeTDS sends an ATTENTION and reads up to the DONE with DONE_ATTN
        assert backend.closed_early and backend.produced < 1_000_000
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4


def test_cancel_mid_stream_pymssql(server: TdsServer, backend: DictBackend) -> None:
    with pymssql_connect(server) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM endless")
        assert len(cur.fetchmany(1000)) == 1000
        # a new statement with rows pending: db-lib cancels the old result (ATTENTION) first
        cur.execute("SELECT * FROM alltypes WHERE TagName = %s", (UNICODE_TAG,))
        assert len(cur.fetchall()) == 4
    assert backend.closed_early and backend.produced < 1_000_000


def test_cancel_mid_stream_mssql_python(server: TdsServer, backend: DictBackend) -> None:
    conn = mssql_python_connect(server)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM endless")
        assert len(cur.fetchmany(1000)) == 1000
        cur.close()
        assert backend.closed_early and backend.produced < 1_000_000
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = ?", UNICODE_TAG)
        assert len(cur.fetchall()) == 4
    finally:
        conn.close()


# --- what the endpoint refuses ---


def test_encryption_demanded_fails_clearly(server: TdsServer) -> None:
    import mssql_python

    before = len(server.logins)
    cs = f"Server=127.0.0.1,{server.port};Database={DATABASE};UID={USER};PWD={PASSWORD};Encrypt=yes"
    with pytest.raises(mssql_python.Error, match="Encryption not supported"):
        mssql_python.connect(cs)
    assert len(server.logins) == before  # the client gave up after PRELOGIN, before LOGIN7


def test_prelogin_reply_and_idle_attention_raw(server: TdsServer) -> None:
    """The bytes the spec asks for, read with a plain socket: the PRELOGIN reply carries MARS
    (FreeTDS falls back to TDS 7.1 without it) and ENCRYPT_NOT_SUP; an ATTENTION with no request
    running still gets its DONE with DONE_ATTN."""
    import socket

    from tests.support.tds import packets as P

    def request(sock: socket.socket, ptype: int, payload: bytes) -> P.Message:
        sock.sendall(P.HEADER.pack(ptype, P.STATUS_EOM, len(payload) + 8, 0, 1, 0) + payload)
        return P.read_message(sock)

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        reply = request(sock, P.PRELOGIN, P.build_prelogin(P.ENCRYPT_OFF))
        options = P.parse_prelogin(reply.data)
        assert options[P.PL_ENCRYPTION] == bytes([P.ENCRYPT_NOT_SUP])
        assert options[P.PL_MARS] == b"\x00" and options[P.PL_VERSION][0] == 16
        login = _login7_payload(USER, PASSWORD, DATABASE)
        reply = request(sock, P.LOGIN7, login)
        assert b"\xad" in reply.data and reply.data.endswith(bytes([0xFD]) + bytes(12))
        reply = request(sock, P.ATTENTION, b"")
        assert reply.data == bytes([0xFD, 0x20, 0, 0, 0]) + bytes(8)


def _login7_payload(user: str, password: str, database: str) -> bytes:
    """A minimal LOGIN7 (MS-TDS 2.2.6.4) for the raw-socket test: TDS 7.4, SQL authentication."""
    import struct

    def scramble(text: str) -> bytes:
        return bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in text.encode("utf-16-le"))

    fields = ["host", user, password, "raw", "127.0.0.1", "", "raw", "", database]
    data, offsets, pos = b"", b"", 36 + 9 * 4 + 6 + 3 * 4 + 4
    for i, text in enumerate(fields):
        raw = scramble(text) if i == 2 else text.encode("utf-16-le")
        offsets += struct.pack("<HH", pos + len(data), len(text))
        data += raw
        if i == 8:
            offsets += bytes(6)  # ClientID
    offsets += struct.pack("<HHHHHHI", pos + len(data), 0, pos + len(data), 0, pos + len(data), 0, 0)
    fixed = struct.pack("<IIIIII4BiI", 0, 0x74000004, 4096, 0, 1, 0, 0xE0, 0x03, 0, 0, 0, 0x409)
    body = fixed + offsets + data
    return struct.pack("<I", len(body)) + body[4:]


# --- replay mode: one pre-encoded result, sent as it is ---


def test_replay_backend_serves_pre_encoded_result_to_each_driver() -> None:
    rows = [number_row(n) for n in range(50_000)]
    payload = encode_result(ResultSet(NUMBERS_COLUMNS, rows))
    assert payload[0] == 0x81 and payload[-13] == 0xFD  # COLMETADATA ... DONE
    replay = ReplayBackend(payload, match="from numbers")
    with TdsServer(replay) as srv:
        with pymssql_connect(srv, user="anyone", password="anything") as conn:  # batch: DONE kept
            cur = conn.cursor()
            cur.execute("SELECT n, t, name, v FROM numbers")
            assert cur.fetchall() == rows
        conn = mssql_python_connect(srv)  # RPC: the DONE is re-sent as DONEINPROC + DONEPROC
        try:
            cur = conn.cursor()
            cur.execute("SELECT n, t, name, v FROM numbers WHERE n < ?", 1)
            table = cur.arrow()
            assert table.num_rows == 50_000 and table.column("name")[49_999].as_py() == rows[-1][2]
            cur.execute(
                "SELECT n, t, name, v FROM numbers WHERE n < ?", 1
            )  # and again on the same connection
            assert len(cur.fetchall()) == 50_000
        finally:
            conn.close()
    assert replay.executed == 3


def test_mssql_python_executemany_uses_prepare_and_execute(server: TdsServer) -> None:
    before = len(server.requests)
    conn = mssql_python_connect(server)
    try:
        conn.cursor().executemany("SELECT * FROM echo WHERE x = ?", [("a",), ("b",)])
    finally:
        conn.close()
    calls = [(r.kind, r.sql, r.params) for r in list(server.requests)[before:] if r.kind.startswith("rpc:")]
    assert calls[:3] == [
        ("rpc:sp_prepare", "SELECT * FROM echo WHERE x = @P1", {}),
        ("rpc:sp_execute", "SELECT * FROM echo WHERE x = @P1", {"@P1": "a"}),  # the handle from sp_prepare
        ("rpc:sp_execute", "SELECT * FROM echo WHERE x = @P1", {"@P1": "b"}),
    ]


def test_python_tds(server: TdsServer) -> None:
    import pytds

    with pytds.connect("127.0.0.1", DATABASE, USER, PASSWORD, port=server.port) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM alltypes WHERE TagName = %s", (UNICODE_TAG,))
        check_typed_rows(cur.fetchall())
    assert server.requests[-1].kind == "rpc:sp_executesql"


def test_stop_closes_client_connections_and_joins_threads(backend: DictBackend) -> None:
    import pymssql

    srv = TdsServer(backend).start()
    conn = pymssql_connect(srv)
    assert srv.connection_count == 1
    srv.stop()
    assert srv.connection_count == 0
    assert not [t for t in threading.enumerate() if t.name.startswith(f"tds-{srv.port}-")]
    with pytest.raises(pymssql.Error):
        conn.cursor().execute("SELECT * FROM alltypes WHERE TagName = %s", (UNICODE_TAG,))
