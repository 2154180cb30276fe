"""The exact T-SQL sent to SQL Server, pinned.

No SQL Server can run on these machines (its wire protocol is the one thing mocked in this suite):
the statements are compiled with the dialect of a real ``mssql+pymssql`` engine, which never
connects, and compared verbatim. The same statements run for real against PostgreSQL and SQLite in
the integration and DAG tests.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.queries import Historian
from airflow_backfill_provider.hooks.wonderware import (
    connection_url,
    is_transient_source_error,
    retry_policy_from_extra,
)

UTC = timezone.utc
START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
HOSTILE = "O'Brien\"; DROP TABLE x --"
MSSQL = sa.create_engine("mssql+pymssql://reader:pw@historian:1433/Runtime").dialect

HISTORY_COLUMNS_TSQL = ", ".join(
    f"[History].[{c}]"
    for c in (
        "DateTime TagName Value VValue Quality QualityDetail OPCQuality wwTagKey wwRowCount wwResolution "
        "wwEdgeDetection wwRetrievalMode wwTimeDeadband wwValueDeadband wwTimeZone wwVersion wwCycleCount "
        "wwTimeStampRule wwInterpolationType wwQualityRule wwStateCalc StateTime PercentGood wwParameters "
        "StartDateTime SourceTag SourceServer wwFilter wwValueSelector wwMaxStates wwOption wwExpression wwUnit"
    ).split()
)


def tsql(stmt):
    compiled = stmt.compile(dialect=MSSQL, compile_kwargs={"render_postcompile": True})
    return compiled.string, compiled.params


def test_tag_discovery_tsql():
    sql, params = tsql(Historian().tags_query(["analog", "discrete", "string"]))
    assert sql == (
        "SELECT [TagRef].[TagName] \nFROM [TagRef] \n"
        "WHERE [TagRef].[TagType] IN (%(TagType_1_1)s, %(TagType_1_2)s, %(TagType_1_3)s) "
        "AND [TagRef].[TagName] NOT LIKE %(TagName_1)s ORDER BY [TagRef].[TagName]"
    )
    assert params == {"TagType_1_1": 1, "TagType_1_2": 2, "TagType_1_3": 3, "TagName_1": "Sys%"}


def test_history_tsql_half_open_window_all_columns_no_value_filter():
    sql, params = tsql(Historian().history_query(["Tank.Level", HOSTILE], START, END))
    # Full retrieval from an inclusive start, without the initial value the Historian makes there
    # (AVEVA pages 329511, 67304): exactly the stored values of [start, end), however it is cut.
    assert sql == (
        f"SELECT {HISTORY_COLUMNS_TSQL} \nFROM [History] \n"
        "WHERE [History].[TagName] IN (%(TagName_1_1)s, %(TagName_1_2)s) "
        "AND [History].[DateTime] >= %(DateTime_1)s AND [History].[DateTime] < %(DateTime_2)s "
        "AND [History].[wwRetrievalMode] = 'Full' AND coalesce([History].[Quality], 0) != 133 "
        "AND coalesce([History].[QualityDetail], 0) != 65536 AND [History].[wwVersion] = %(wwVersion_1)s "
        "AND [History].[wwTimeZone] = %(wwTimeZone_1)s"
    )
    assert params == {
        "TagName_1_1": "Tank.Level",
        "TagName_1_2": HOSTILE,  # a bound value, never SQL text
        "DateTime_1": datetime(2025, 1, 1),
        "DateTime_2": datetime(2025, 1, 2),
        "wwVersion_1": "Latest",
        "wwTimeZone_1": "UTC",
    }
    assert HOSTILE not in sql and "Value IS NOT NULL" not in sql


def test_history_tsql_schema_and_options_left_out():
    sql, _ = tsql(Historian(schema="dbo").history_query(["A"], START, END, version=None, time_zone=None))
    assert "FROM dbo.[History]" in sql
    assert "dbo.[History].[DateTime] >= %(DateTime_1)s AND dbo.[History].[DateTime] < %(DateTime_2)s" in sql
    assert "wwVersion" not in sql.split("WHERE")[1] and "wwTimeZone" not in sql.split("WHERE")[1]


def test_count_by_hour_tsql():
    sql, _ = tsql(Historian().count_query(["A"], START, END, by_hour=True))
    hour = "CONVERT(VARCHAR(19), DATEADD(hour, DATEDIFF(hour, 0, [History].[DateTime]), 0), 120)"
    assert sql.startswith(f"SELECT [History].[TagName], {hour} AS [Hour], count(*) AS n \nFROM [History]")
    assert sql.endswith(f"GROUP BY [History].[TagName], {hour}")


def test_history_query_rejects_empty_and_oversized_tag_lists():
    with pytest.raises(ValueError, match="at least one tag"):
        Historian().history_query([], START, END)
    with pytest.raises(ValueError, match="2001 tags in one History query"):
        Historian().history_query([f"T{i}" for i in range(2001)], START, END)


def test_connection_url_sql_server_from_fields():
    url = connection_url(
        host="historian.plant",
        port=None,
        login="reader",
        password="p@ss:w/rd",
        schema=None,
        extra={"login_timeout": 10, "reader": "dbapi"},
    )
    assert url.drivername == "mssql+pymssql"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "historian.plant",
        1433,
        "Runtime",
        "reader",
        "p@ss:w/rd",
    )
    assert dict(url.query) == {"login_timeout": "10"}  # only pymssql options are forwarded
    assert "p@ss" not in repr(url)


def test_connection_url_prefers_sqlalchemy_url_and_requires_host():
    assert (
        connection_url(
            host="x",
            port=1,
            login=None,
            password=None,
            schema=None,
            extra={"sqlalchemy_url": "sqlite:////tmp/h.db"},
        )
        == "sqlite:////tmp/h.db"
    )
    with pytest.raises(ConfigurationError, match="has no host"):
        connection_url(host=None, port=None, login=None, password=None, schema=None, extra={})


def test_retry_policy_from_extra():
    p = retry_policy_from_extra({"retry_attempts": "2", "retry_base_delay": 0.5})
    assert (p.attempts, p.base_delay) == (2, 0.5)
    with pytest.raises(ConfigurationError, match="retry_attempts must be >= 1"):
        retry_policy_from_extra({"retry_attempts": 0})
    with pytest.raises(ConfigurationError, match="Invalid retry settings"):
        retry_policy_from_extra({"retry_attempts": "many"})


def test_transient_error_classification():
    from sqlalchemy import exc

    assert is_transient_source_error(exc.OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert is_transient_source_error(TimeoutError("read timed out"))
    assert not is_transient_source_error(
        exc.OperationalError("SELECT 1", {}, Exception("no such table: History"))
    )
    assert not is_transient_source_error(
        exc.ProgrammingError("SELECT 1", {}, Exception("Invalid object name 'History'"))
    )
    assert not is_transient_source_error(ValueError("bad"))
