"""Prepare a SQL Server for the simulated historian, then load it with the simulator over pymssql.

``python -m airflow_backfill_provider.testing.sqlserver [options] -- [wonderware-simulator options]``
creates the historian database (``Runtime``) if it is missing, a read-only login for Airflow's
``wonderware`` connection (member of ``db_datareader``), and runs ``wonderware-simulator`` against
the database as the admin login. The docker-compose stack's ``historian-init`` service runs it.

Passwords come from environment variables (``MSSQL_SA_PASSWORD``, ``HISTORIAN_READER_PASSWORD``),
never from the command line, where ``ps`` and shell history would show them. No Airflow import.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from airflow_backfill_provider.testing import simulator

ADMIN_PASSWORD_ENV = "MSSQL_SA_PASSWORD"
READER_PASSWORD_ENV = "HISTORIAN_READER_PASSWORD"


def quote_name(name: str) -> str:
    """A T-SQL delimited identifier: ``[name]``, a ``]`` inside doubled."""
    return "[" + name.replace("]", "]]") + "]"


def quote_literal(value: str) -> str:
    """A T-SQL Unicode string literal: ``N'value'``, a ``'`` inside doubled.

    ``CREATE LOGIN … WITH PASSWORD`` takes a literal, never a parameter, so the password is quoted here.
    """
    return "N'" + value.replace("'", "''") + "'"


def setup_statements(
    database: str, reader_login: str | None = None, reader_password: str | None = None
) -> list[str]:
    """The T-SQL batches, run in order on ``master`` with autocommit, that make ``database`` and the
    reader. Each is idempotent: a second run changes nothing but the reader's password."""
    db = quote_name(database)
    statements = [f"IF DB_ID({quote_literal(database)}) IS NULL CREATE DATABASE {db}"]
    if reader_login:
        if not reader_password:
            raise ValueError(f"A reader login {reader_login!r} needs a password (set {READER_PASSWORD_ENV}).")
        login, name, password = (
            quote_name(reader_login),
            quote_literal(reader_login),
            quote_literal(reader_password),
        )
        statements += [
            f"IF SUSER_ID({name}) IS NULL CREATE LOGIN {login} WITH PASSWORD = {password}, "
            f"DEFAULT_DATABASE = {db} ELSE ALTER LOGIN {login} WITH PASSWORD = {password}",
            f"USE {db}",
            f"IF USER_ID({name}) IS NULL CREATE USER {login} FOR LOGIN {login}",
            # read access to every table, also to TagRef/History recreated by `--replace` later
            f"ALTER ROLE [db_datareader] ADD MEMBER {login}",
        ]
    return statements


def prepare(
    *,
    host: str,
    port: int,
    admin_login: str,
    admin_password: str,
    database: str,
    reader_login: str | None,
    reader_password: str | None,
    login_timeout: int = 60,
) -> None:
    """Run :func:`setup_statements` on the server (CREATE DATABASE refuses to run in a transaction)."""
    import pymssql

    statements = setup_statements(database, reader_login, reader_password)
    conn = pymssql.connect(
        server=host,
        port=str(port),
        user=admin_login,
        password=admin_password,
        database="master",
        autocommit=True,
        login_timeout=login_timeout,
    )
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
    finally:
        conn.close()


def admin_url(*, host: str, port: int, admin_login: str, admin_password: str, database: str) -> str:
    """The simulator's SQLAlchemy URL (password URL-encoded: it is passed in-process, not printed)."""
    from sqlalchemy.engine import URL

    url = URL.create(
        "mssql+pymssql",
        username=admin_login,
        password=admin_password,
        host=host,
        port=port,
        database=database,
    )
    return url.render_as_string(hide_password=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the server, then run ``wonderware-simulator`` with the arguments after ``--``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, simulator_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(
        prog="python -m airflow_backfill_provider.testing.sqlserver",
        description="Create a SQL Server historian database and a read-only login, then fill TagRef and "
        f"History with wonderware-simulator (its options after --). Passwords: ${ADMIN_PASSWORD_ENV} "
        f"(admin) and ${READER_PASSWORD_ENV} (reader).",
    )
    parser.add_argument("--host", default="sqlserver")
    parser.add_argument("--port", type=int, default=1433)
    parser.add_argument("--admin-login", default="sa")
    parser.add_argument("--database", default="Runtime")
    parser.add_argument("--reader-login", default="historian_reader", help="empty: no reader login")
    parser.add_argument("--login-timeout", type=int, default=60, help="seconds (60)")
    args = parser.parse_args(own)
    admin_password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not admin_password:
        parser.error(f"set {ADMIN_PASSWORD_ENV} to the password of {args.admin_login!r}")
    reader_login = args.reader_login or None
    reader_password = os.environ.get(READER_PASSWORD_ENV)
    if reader_login and not reader_password:
        parser.error(f"set {READER_PASSWORD_ENV} for the login {reader_login!r}, or pass --reader-login ''")
    prepare(
        host=args.host,
        port=args.port,
        admin_login=args.admin_login,
        admin_password=admin_password,
        database=args.database,
        reader_login=reader_login,
        reader_password=reader_password,
        login_timeout=args.login_timeout,
    )
    url = admin_url(
        host=args.host,
        port=args.port,
        admin_login=args.admin_login,
        admin_password=admin_password,
        database=args.database,
    )
    return simulator.main(["--url", url, *simulator_args])


if __name__ == "__main__":
    sys.exit(main())
