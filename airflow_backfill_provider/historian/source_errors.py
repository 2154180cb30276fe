"""What a source database error means: a setting to fix, or a fault that a retry may outlive.

Plain Python, no Airflow and no driver import: errors are recognised by what the drivers attach to
them (SQL Server's error number through pymssql, SQLite's result code, PostgreSQL's SQLSTATE) and,
where a driver attaches nothing, by the server's words: libpq reports a refused login or a missing
database at connect time with no SQLSTATE, only the server's message.
"""

from __future__ import annotations

import re

# SQL Server error numbers (pymssql) that name a setting, not a passing fault.
_MSSQL_NUMBERS = {
    18456: "the login was refused (wrong login or password)",
    18452: "the login is from an untrusted domain (Windows authentication is not set up for it)",
    18470: "the login is disabled",
    18486: "the login is locked out",
    18487: "the login's password has expired",
    18488: "the login's password must be changed",
    4060: "the database does not exist, or the login may not open it",
    4064: "the login's default database cannot be opened",
    911: "the database does not exist",
}
# SQLite result codes (sqlite3's sqlite_errorcode) that a retry cannot fix.
_SQLITE_CODES = {
    3: "permission denied on the SQLite file",  # SQLITE_PERM
    14: "the SQLite file cannot be opened (its folder is missing or not readable)",  # SQLITE_CANTOPEN
    23: "the SQLite file refused the access (authorisation)",  # SQLITE_AUTH
    26: "the file is not an SQLite database",  # SQLITE_NOTADB
}
# PostgreSQL SQLSTATEs, for the errors raised after the connection is up.
_PG_STATES = {
    "28000": "the server refused the login",
    "28P01": "the server refused the password (wrong login or password)",
    "3D000": "the database does not exist",
    "42501": "permission denied",
}
# (pattern, words) for errors that carry no code: libpq at connect time, ADBC, pymssql fallbacks.
_MESSAGES = (
    (
        re.compile(r'password authentication failed for user "([^"]*)"'),
        "the server refused the password of {0!r}",
    ),
    (re.compile(r"no password supplied"), "the server asks for a password and the connection has none"),
    (re.compile(r'database "([^"]*)" does not exist'), "the database {0!r} does not exist"),
    (re.compile(r'role "([^"]*)" does not exist'), "the login {0!r} does not exist on the server"),
    (re.compile(r"no pg_hba\.conf entry"), "the server's pg_hba.conf admits no such login from here"),
    (re.compile(r"login failed for user '([^']*)'", re.I), "the login {0!r} was refused"),
    (
        re.compile(r"unable to open database file|failed to open '([^']*)'"),
        "the SQLite file cannot be opened",
    ),
    (re.compile(r"permission denied", re.I), "permission denied"),
)
_CANNOT_OPEN_DATABASE = re.compile(r'cannot open database "([^"]*)"', re.I)
# Words of the drivers for a server they could not reach at all: pymssql (FreeTDS), mssql-python (ODBC
# Driver 18: "Client unable to establish connection", a TCP Provider error), libpq.
_UNREACHABLE = re.compile(
    r"unable to establish connection|tcp provider|adaptive server is unavailable|unable to connect|"
    r"connection refused|could not connect",
    re.I,
)
# Words of the drivers' query timeouts: pymssql (FreeTDS 20003), ODBC (mssql-python, HYT00), psycopg.
_TIMEOUT = re.compile(r"timed out|timeout expired|statement timeout", re.I)
# Messages of errors that retrying cannot fix, although some drivers raise them as OperationalError.
_PERMANENT_MARKERS = ("no such table", "no such column", "syntax error", "invalid object name")


def configuration_problem(err: BaseException) -> str | None:
    """Words for a source error that a retry cannot fix (a refused login, an unknown database, a
    missing permission), or ``None`` when the error is something else."""
    orig = getattr(err, "orig", None) or err  # SQLAlchemy keeps the driver's error in .orig
    database = _CANNOT_OPEN_DATABASE.search(str(orig))
    if database:  # SQL Server follows its 4060 with an 18456, which db-lib may report alone
        return f"the database {database.group(1)!r} does not exist, or the login may not open it"
    number = mssql_error_number(orig)
    if number in _MSSQL_NUMBERS:
        return _MSSQL_NUMBERS[number]
    code = getattr(orig, "sqlite_errorcode", None)
    if code in _SQLITE_CODES:
        return _SQLITE_CODES[code]
    state = getattr(orig, "sqlstate", None)
    if state in _PG_STATES:
        return _PG_STATES[state]
    text = str(orig)
    for pattern, words in _MESSAGES:
        match = pattern.search(text)
        if match:
            return words.format(*(g or "" for g in match.groups()))
    return None


def driver_message(err: BaseException) -> str:
    """The driver's error in one readable line: pymssql's ``(number, b'...')`` decoded, its DB-Lib
    headers and repeats dropped; other drivers' first line."""
    orig = getattr(err, "orig", None) or err
    number = mssql_error_number(orig)
    if number is not None:
        args = orig.args[0] if isinstance(orig.args[0], tuple) else orig.args
        text = args[1].decode("utf-8", "replace") if isinstance(args[1], bytes) else str(args[1])
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        kept = [line for line in dict.fromkeys(lines) if not line.startswith("DB-Lib error message")]
        return f"{type(orig).__name__} {number}: {'; '.join(kept) or text.strip()}"
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return f"{type(orig).__name__}: {lines[0] if lines else ''}"


def mssql_error_number(err: BaseException) -> int | None:
    """SQL Server's error number of a pymssql error: ``args`` is ``(number, message)`` for a failed
    statement and ``((number, message),)`` for a failed connect."""
    args = getattr(err, "args", ())
    if args and isinstance(args[0], tuple):
        args = args[0]
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], (bytes, str)):
        return args[0]
    return None


def unreachable(err: BaseException) -> str | None:
    """Words for a server the driver could not reach at all, or ``None`` for another error."""
    orig = getattr(err, "orig", None) or err
    if _UNREACHABLE.search(str(orig)):
        return "the server is unreachable (nothing answers at that host and port, or a firewall drops it)"
    return None


def is_timeout(err: BaseException) -> bool:
    """True when a source error is a query or connection timeout (the driver's own words)."""
    orig = getattr(err, "orig", None) or err
    return bool(_TIMEOUT.search(str(orig)))


def is_transient_source_error(err: BaseException) -> bool:
    """True for errors worth retrying: lost connections, timeouts, a server that is down or busy.

    Never for a setting to fix (see :func:`configuration_problem`) or bad SQL.
    """
    if configuration_problem(err) is not None:
        return False
    text = str(err).lower()
    if any(marker in text for marker in _PERMANENT_MARKERS):
        return False
    from sqlalchemy import exc

    if isinstance(err, exc.DBAPIError):
        return err.connection_invalidated or isinstance(err, (exc.OperationalError, exc.InterfaceError))
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return type(err).__name__ in ("OperationalError", "InterfaceError")  # raw pymssql / psycopg / ADBC
