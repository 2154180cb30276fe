"""The Wonderware hook against SQL Server's wire protocol, through both readers.

No SQL Server can run here: the source is the TDS endpoint (``tests/support/tds``) in front of the
AVEVA Historian emulator (``tests/support/aveva``). The readers are the real drivers: pymssql
(reader ``dbapi``) and mssql-python's Arrow fetch (reader ``arrow``, the default). What they must
return is read from the emulator's store, outside the code under test.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from airflow_backfill_provider.exceptions import ConfigurationError, SourceUnavailableError
from airflow_backfill_provider.testing.generation import SimulatorConfig
from tests.support.aveva import Point
from tests.support.sqlserver import READER_PASSWORD, SlowHistory, sqlserver_historian

UTC = timezone.utc
T0 = datetime(2025, 1, 1)
READERS = ("arrow", "dbapi")
KEY = [("TagName", "ascending"), ("DateTime", "ascending")]
# Values a careless reader mangles (SQL Server's float has no NaN or infinity).
HOSTILE_VALUES = [
    (None, "only text: Value NULL, VValue set"),
    (0.1 + 0.2, ""),
    (1e-7, "  padded  "),
    (5e-324, "Ünïcödé °C 漢字 🙂"),
    (1.7976931348623157e308, "a,b;\"quoted\" 'single'"),
    (-2.2250738585072014e-308, "line1\nline2\r\nline3"),
    (123456789.123456789, None),
    (None, None),
]


@pytest.fixture(scope="module")
def historian(tmp_path_factory):
    config = SimulatorConfig(
        start=T0,
        end=T0 + timedelta(days=1),
        tags=9,
        rate=600,
        boundary_every=timedelta(days=1),
        hostile_tags=True,
    )
    with sqlserver_historian(tmp_path_factory.mktemp("sqlserver"), config) as sqlserver:
        store = sqlserver.store
        store.add_tag("Hostile.Values", 3)
        store.add_points(
            "Hostile.Values",
            [
                Point(datetime(2025, 1, 1, 12, 0, i, 123457 + i, tzinfo=UTC), v, t, i % 2, 192 + i, 192)
                for i, (v, t) in enumerate(HOSTILE_VALUES)
            ],
        )
        yield sqlserver


def hook(historian, reader: str | None = None, **conn):
    from airflow_backfill_provider.hooks.wonderware import WonderwareHook

    extra = {key: conn.pop(key) for key in list(conn) if key not in ("password", "database")}
    os.environ["AIRFLOW_CONN_WONDERWARE_WIRE"] = json.dumps(historian.connection(**conn, **extra))
    return WonderwareHook("wonderware_wire", reader=reader)


def read(h, tags, start, end, **kw) -> pa.Table:
    return pa.Table.from_batches(list(h.iter_history_batches(tags, start, end, **kw))).sort_by(KEY)


def test_the_default_reader_on_sql_server_is_the_arrow_fetch(historian):
    assert hook(historian).reader == "arrow"
    assert hook(historian, "dbapi").reader == "dbapi"


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_returns_exactly_the_stored_values(historian, reader):
    h = hook(historian, reader)
    tags = h.discover_tags()
    got = read(h, tags, T0 + timedelta(hours=3), T0 + timedelta(hours=20), batch_size=100)
    rows = list(
        zip(
            *(
                got.column(c).to_pylist()
                for c in ("TagName", "DateTime", "Value", "VValue", "Quality", "QualityDetail")
            ),
            strict=True,
        )
    )
    lo, hi = T0 + timedelta(hours=3), T0 + timedelta(hours=20)
    want = [r for r in historian.store.stored(tags) if lo <= r[1] < hi]
    assert [(t, d.replace(tzinfo=None), v, vv, q, qd) for t, d, v, vv, q, qd in rows] == want


def test_the_readers_agree_value_by_value_for_every_column(historian):
    tables = {}
    for reader in READERS:
        h = hook(historian, reader)
        tags = [*h.discover_tags(), "Hostile.Values"]
        tables[reader] = read(h, tags, T0, T0 + timedelta(days=1), batch_size=1000)
    arrow, dbapi = tables["arrow"], tables["dbapi"]
    assert arrow.schema.equals(dbapi.schema) and arrow.num_rows == dbapi.num_rows > 1000
    for name in arrow.column_names:
        assert arrow.column(name).equals(dbapi.column(name)), name
    hostile = arrow.filter(pa.compute.equal(arrow.column("TagName"), "Hostile.Values"))
    values = hostile.column("Value").to_pylist()
    assert (
        values[1] == 0.1 + 0.2
        and values[2] == 1e-7
        and values[3] == 5e-324
        and values[4] == 1.7976931348623157e308
    )
    assert hostile.column("VValue").to_pylist() == [t for _, t in HOSTILE_VALUES]
    # DATETIME2(7) to microseconds: the 100-ns digit is cut, as Python's datetime cuts it
    assert hostile.column("DateTime").to_pylist()[0] == datetime(2025, 1, 1, 12, 0, 0, 123457, tzinfo=UTC)


@pytest.mark.parametrize("reader", READERS)
def test_two_thousand_tags_in_one_chunk(tmp_path, reader):
    with sqlserver_historian(tmp_path) as many:
        for i in range(2000):
            many.store.add_tag(f"Line{i // 100:02d}.Tag'{i:04d}", 1 + i % 3)
            many.store.add_points(
                f"Line{i // 100:02d}.Tag'{i:04d}",
                [
                    Point(datetime(2025, 1, 1, h, i % 60, tzinfo=UTC), float(i + h), str(i + h), 0, 192, 192)
                    for h in (0, 5)
                ],
            )
        h = hook(many, reader)
        tags = h.discover_tags()
        assert len(tags) == 2000
        got = read(h, tags, T0, T0 + timedelta(hours=6))
        assert got.num_rows == 4000
        assert sorted(set(got.column("TagName").to_pylist())) == sorted(tags)
        assert len(many.emulator.history_queries) == 1  # one query for the 2,000 tags


@pytest.mark.parametrize("reader", READERS)
def test_a_connection_dropped_mid_read_is_retried_and_exact(historian, reader):
    h = hook(historian, reader, retry_attempts=3)
    tags = h.discover_tags()
    whole = read(h, tags, T0, T0 + timedelta(days=1), batch_size=200)
    before = len(historian.emulator.history_queries)
    historian.server.drop_after_rows(
        300, column="wwRetrievalMode"
    )  # the next History result: cut after 300 rows
    again = h.call_with_retry(
        lambda: read(h, tags, T0, T0 + timedelta(days=1), batch_size=200), "History read"
    )
    assert again.equals(whole) and whole.num_rows > 1000
    assert len(historian.emulator.history_queries) - before == 2  # the cut read failed, and was retried
    historian.server.drop_after_rows(None)


def test_connection_test_names_what_is_wrong(historian):
    """The Test button, through the driver that reads History (mssql-python by default)."""
    ok, message = hook(historian).test_connection()
    assert ok and "TagRef holds 13 tags" in message  # 9 + 3 Sys + Hostile.Values
    ok, message = hook(historian, password="wrong").test_connection()
    assert not ok and "the login 'historian_reader' was refused" in message
    assert "wrong" not in message and READER_PASSWORD not in message
    ok, message = hook(historian, database="Runtim").test_connection()
    assert not ok and "the database 'Runtim' does not exist, or the login may not open it" in message


def test_connection_test_through_pymssql(historian):
    ok, message = hook(historian, "dbapi").test_connection()
    assert ok and "TagRef holds 13 tags" in message
    ok, message = hook(historian, "dbapi", password="wrong").test_connection()
    assert not ok and "the login was refused (wrong login or password)" in message
    assert "wrong" not in message.replace("wrong login", "") and READER_PASSWORD not in message


@pytest.mark.parametrize("reader", READERS)
def test_a_query_timeout_is_reported_as_one(historian, reader):
    h = hook(historian, reader, timeout=1, retry_attempts=2)
    tags = h.discover_tags()
    with SlowHistory(historian.emulator, 3), pytest.raises(SourceUnavailableError) as err:
        h.call_with_retry(lambda: read(h, tags, T0, T0 + timedelta(hours=1)), "History read")
    assert "2 times" in str(err.value)
    assert (
        "Each try timed out (the connection's timeout of 1 s): raise the connection extra 'timeout'"
        in str(err.value)
    )


def test_a_bad_login_is_not_retried(historian):
    h = hook(historian, "arrow", password="wrong", retry_attempts=5)
    with pytest.raises(ConfigurationError, match="the login ('historian_reader' )?was refused"):
        h.call_with_retry(lambda: read(h, ["Hostile.Values"], T0, T0 + timedelta(hours=1)), "History read")
