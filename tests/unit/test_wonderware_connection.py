"""The Wonderware connection mapping and the classification of source errors (no database)."""

from __future__ import annotations

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.source_errors import configuration_problem, is_transient_source_error
from airflow_backfill_provider.hooks._wonderware_connection import describe_url, url_password_warning
from airflow_backfill_provider.hooks.wonderware import (
    LEGACY_URL_EXTRA,
    URL_EXTRA,
    connection_url,
    retry_policy_from_extra,
)


def url(extra, login=None, password=None):
    return connection_url(host=None, port=None, login=login, password=password, schema=None, extra=extra)


def test_the_url_extra_is_named_so_airflow_redacts_it():
    from airflow._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    assert should_hide_value_for_key(URL_EXTRA)
    assert not should_hide_value_for_key(LEGACY_URL_EXTRA)  # why the new name


def test_login_and_password_fields_fill_in_and_override_the_url():
    given = {URL_EXTRA: "postgresql+psycopg://127.0.0.1:5432/historian"}
    u = url(given, login="reader", password="p@ss:w/rd")
    assert (u.username, u.password, u.host, u.port, u.database) == (
        "reader",
        "p@ss:w/rd",
        "127.0.0.1",
        5432,
        "historian",
    )
    # The fields win over a user and password inside the URL.
    inside = {URL_EXTRA: "postgresql+psycopg://old:old-pw@h/db"}
    assert (url(inside, password="new-pw").username, url(inside, password="new-pw").password) == (
        "old",
        "new-pw",
    )
    assert url(inside, login="new").password == "old-pw"
    # The older extra name is still read; the new one wins when both are set.
    assert url({LEGACY_URL_EXTRA: "sqlite:////tmp/old.db"}) == "sqlite:////tmp/old.db"
    both = {LEGACY_URL_EXTRA: "sqlite:////tmp/old.db", URL_EXTRA: "sqlite:////tmp/new.db"}
    assert url(both) == "sqlite:////tmp/new.db"
    assert "p@ss" not in describe_url(url(given, login="reader", password="p@ss:w/rd"))


def test_a_password_inside_the_url_gets_a_warning_saying_where_it_goes():
    for key in (URL_EXTRA, LEGACY_URL_EXTRA):
        extra = {key: "postgresql+psycopg://reader:canary-pw@h/db"}
        warning = url_password_warning(extra, None)
        assert key in warning and "Password field" in warning and "canary-pw" not in warning
        assert "is used instead" in url_password_warning(extra, "field-pw")
    assert url_password_warning({URL_EXTRA: "postgresql+psycopg://reader@h/db"}, "pw") is None
    assert url_password_warning({URL_EXTRA: "sqlite:////data/h.db"}, None) is None
    assert url_password_warning({}, "pw") is None


def test_a_value_that_is_not_a_url_is_refused_without_echo():
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy URL") as info:
        url({URL_EXTRA: "host=h password=canary-pw"}, login="x")
    assert "canary-pw" not in str(info.value)


def test_fields_a_form_left_empty_mean_the_defaults():
    policy = retry_policy_from_extra(
        {"retry_attempts": None, "retry_base_delay": "", "retry_max_delay": None}
    )
    assert (policy.attempts, policy.base_delay, policy.max_delay) == (4, 1.0, 30.0)
    assert url({URL_EXTRA: None, LEGACY_URL_EXTRA: "sqlite:////tmp/h.db"}) == "sqlite:////tmp/h.db"


# -- what an error means ---------------------------------------------------------------------------


def _pymssql_errors():
    """pymssql's own exception classes, shaped as pymssql raises them (no SQL Server runs here)."""
    pymssql = pytest.importorskip("pymssql")
    connect = pymssql.exceptions.OperationalError(
        (18456, b"Login failed for user 'reader'.DB-Lib error message 20018, severity 14")
    )
    statement = pymssql.exceptions.OperationalError(
        4060, b'Cannot open database "Runtim" requested by the login.'
    )
    lost = pymssql.exceptions.OperationalError((20047, b"DB-Lib error message 20047: DBPROCESS is dead"))
    return connect, statement, lost


def test_sql_server_login_and_database_errors_are_configuration_errors():
    connect, statement, lost = _pymssql_errors()
    assert "wrong login or password" in configuration_problem(connect)
    assert "the database 'Runtim' does not exist" in configuration_problem(statement)
    assert not is_transient_source_error(connect) and not is_transient_source_error(statement)
    assert configuration_problem(lost) is None and is_transient_source_error(lost)


def test_sqlite_and_postgresql_errors_by_code_and_words():
    import sqlite3

    import sqlalchemy as sa

    engine = sa.create_engine("sqlite:////no/such/dir/historian.db")
    with pytest.raises(sa.exc.OperationalError) as cantopen:
        engine.connect()
    assert "cannot be opened" in configuration_problem(cantopen.value)
    assert not is_transient_source_error(cantopen.value)
    refused = sa.exc.OperationalError(
        "connect",
        {},
        Exception('connection failed: FATAL:  password authentication failed for user "reader"'),
    )
    assert configuration_problem(refused) == "the server refused the password of 'reader'"
    missing = Exception('connection failed: FATAL:  database "histrian" does not exist')
    assert configuration_problem(missing) == "the database 'histrian' does not exist"
    assert "has none" in configuration_problem(Exception("fe_sendauth: no password supplied"))
    down = sa.exc.OperationalError("connect", {}, Exception("connection refused"))
    assert configuration_problem(down) is None and is_transient_source_error(down)
    assert configuration_problem(sqlite3.OperationalError("database is locked")) is None


def test_encrypt_and_trust_server_certificate_reach_both_drivers():
    from sqlalchemy.engine import make_url

    from airflow_backfill_provider.historian.mssql_reader import connection_string
    from airflow_backfill_provider.hooks._wonderware_connection import connection_url, tls_settings

    extra = {"encrypt": "yes", "trust_server_certificate": "true", "timeout": 30}
    tls = tls_settings(extra)
    assert tls == {"encrypt": "yes", "trust_server_certificate": True}
    url = connection_url(host="h", port=1444, login="u;x", password="p}w;d=", schema="Runtime", extra=extra)
    assert url.query == {"timeout": "30", "encryption": "require"}  # pymssql's (FreeTDS's) word
    odbc = connection_string(make_url(url), **tls)
    assert odbc == (
        "Server=tcp:h,1444;Database={Runtime};UID={u;x};PWD={p}}w;d=};Encrypt=yes;TrustServerCertificate=yes"
    )
    assert tls_settings({"encrypt": False}) == {"encrypt": "no", "trust_server_certificate": None}
    assert tls_settings({"encrypt": "strict"})["encrypt"] == "strict"
    assert (
        tls_settings({})
        == tls_settings({"encrypt": "auto"})
        == {"encrypt": None, "trust_server_certificate": None}
    )
    assert "Encrypt" not in connection_string(make_url("mssql+pymssql://u@h/db"))
    with pytest.raises(ConfigurationError, match="encrypt must be auto, yes, no or strict, got 'maybe'"):
        tls_settings({"encrypt": "maybe"})
    with pytest.raises(
        ConfigurationError, match="Invalid trust_server_certificate .* 'y': use true or false"
    ):
        tls_settings({"trust_server_certificate": "y"})


def test_a_server_that_cannot_be_reached_is_said_in_words():
    from airflow_backfill_provider.historian.source_errors import unreachable

    odbc = Exception(
        "Driver Error: Client unable to establish connection; DDBC Error: [Microsoft]TCP Provider: Error code 0x2749."
    )
    freetds = Exception(
        (20009, b"DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is unavailable")
    )
    for err in (odbc, freetds):
        assert "the server is unreachable" in unreachable(err)
    assert unreachable(Exception("Invalid object name 'History'.")) is None
