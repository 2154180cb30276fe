"""The Historian emulator's retrieval rules, one test per documented rule (AVEVA page in each name).

The emulator (tests/support/aveva) stands in for AVEVA Historian, which cannot run here; these tests
pin it to AVEVA's documentation, so that the provider's tests against it mean something. The
provider's own statements go through it unchanged (last tests).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects.mssql import pymssql

from airflow_backfill_provider.historian.queries import Historian
from tests.support.aveva import HistorianEmulator, HistorianStore, Point, Request, retrieve
from tests.support.tds.backend import Session, SqlError

UTC = timezone.utc
DAY = datetime(2009, 9, 12, tzinfo=UTC)


def at(minute: int) -> datetime:
    return DAY + timedelta(minutes=minute)


def wall(minute: int) -> datetime:
    return at(minute).replace(tzinfo=None)


# AVEVA page 67300's sample data for tag A001: (minute, Value, QualityDetail); 249 is a NULL value.
SAMPLE = [
    (11, 1.0, 192),
    (13, 1.6, 192),
    (16, 1.3, 192),
    (21, 2.0, 192),
    (24, 1.2, 192),
    (27, 1.2, 192),
    (28, None, 249),
    (29, None, 249),
    (32, 0.6, 192),
    (35, None, 249),
    (37, 1.5, 192),
    (43, 1.3, 192),
]
POINTS = [Point(at(m), v, None if v is None else str(v), 0, qd, 192) for m, v, qd in SAMPLE]


def rows(request: Request, points=POINTS, zone: str = "UTC"):
    return [(r.time, r.value, r.quality, r.quality_detail) for r in retrieve("A001", points, request, zone)]


def req(start, end, **kw) -> Request:
    return Request(tags=("A001",), start=start, end=end, **kw)


def test_delta_page_67300_example():
    """Delta from 00:20 to 00:40 returns exactly the rows of AVEVA's documented result."""
    got = [(t, v, qd) for t, v, _, qd in rows(req(wall(20), wall(40), mode="Delta"))]
    assert got == [
        (wall(20), 1.3, 192),  # the initial value: 00:16's value, re-stamped
        (wall(21), 2.0, 192),
        (wall(24), 1.2, 192),  # 00:27's 1.2 is unchanged: dropped
        (wall(28), None, 249),  # 00:29's NULL is unchanged: dropped
        (wall(32), 0.6, 192),
        (wall(35), None, 249),
        (wall(37), 1.5, 192),
    ]


def test_initial_value_restamped_with_quality_133_page_67304():
    first = rows(req(wall(20), wall(40), mode="Full"))[0]
    assert first == (wall(20), 1.3, 133, 192)


def test_no_earlier_value_gives_a_null_with_quality_detail_65536_page_67304():
    first = rows(req(wall(5), wall(12), mode="Full"))
    assert first[0] == (wall(5), None, 1, 65536)
    assert first[1] == (wall(11), 1.0, 0, 192)
    (null,) = [r for r in retrieve("A001", POINTS, req(wall(5), wall(12), mode="Full")) if r.value is None]
    assert null.opc_quality == 0


def test_start_before_the_first_history_block_returns_null_first_page_72348():
    got = rows(req(datetime(2009, 1, 1), wall(12), mode="Delta"))
    assert got[0] == (datetime(2009, 1, 1), None, 1, 65536) and got[1][0] == wall(11)


def test_exclusive_start_returns_no_initial_value_page_67304():
    got = rows(req(wall(20), wall(40), start_inclusive=False, mode="Full"))
    assert got[0][0] == wall(21) and all(q != 133 for _, _, q, _ in got)


def test_a_stored_value_exactly_on_the_start_is_no_initial_value():
    got = rows(req(wall(21), wall(22), mode="Full"))
    assert got == [(wall(21), 2.0, 0, 192)]


def test_delta_depends_on_where_the_window_starts_page_67297():
    """The same stored value (00:27, 1.2) is returned or not depending on the start: the reason the
    provider reads in Full mode."""
    from_20 = [t for t, *_ in rows(req(wall(20), wall(30), mode="Delta"))]
    from_26 = [t for t, *_ in rows(req(wall(26), wall(30), mode="Delta"))]
    assert wall(27) not in from_20 and wall(27) not in from_26
    assert [t for t, *_ in rows(req(wall(27), wall(30), mode="Delta"))][0] == wall(27)
    # the initial value 1.2 at 00:26 suppresses the stored 1.2 at 00:27
    assert rows(req(wall(26), wall(28), end_inclusive=False, mode="Delta")) == [(wall(26), 1.2, 133, 192)]


def test_full_returns_every_stored_value_pages_329511_67296():
    got = rows(req(wall(20), wall(40), start_inclusive=False, mode="Full"))
    assert [t for t, *_ in got] == [wall(m) for m, *_ in SAMPLE if 20 < m <= 40]


def test_end_inclusive_and_exclusive():
    assert rows(req(wall(20), wall(21), start_inclusive=False, mode="Full")) == [(wall(21), 2.0, 0, 192)]
    assert rows(req(wall(20), wall(21), start_inclusive=False, end_inclusive=False, mode="Full")) == []


def test_cyclic_default_is_100_rows_pages_72284_72285():
    got = rows(req(wall(20), wall(40), mode="Cyclic"))
    assert len(got) == 100 and got[0][0] == wall(20) and got[-1][0] == wall(40)
    assert len(rows(req(wall(20), wall(40), mode="Cyclic", cycle_count=5))) == 5
    assert len(rows(req(wall(20), wall(40), mode="Cyclic", resolution_ms=60_000))) == 21


def test_versions_latest_and_original_pages_72196_72198():
    revised = Point(at(21), 2.5, "2.5", 0, 202, 192, revision=1)
    points = [*POINTS, revised]
    latest = rows(req(wall(21), wall(22), mode="Full"), points)
    original = rows(req(wall(21), wall(22), mode="Full", version="Original"), points)
    assert latest == [(wall(21), 2.5, 0, 202)] and original == [(wall(21), 2.0, 0, 192)]


def test_time_zone_server_local_unless_wwtimezone():
    """DateTime is in the server's local time unless wwTimeZone is set (both ways: WHERE and result)."""
    summer = [Point(datetime(2025, 7, 1, 10, tzinfo=UTC), 1.0, "1.0", 0, 192, 192)]
    local = rows(
        req(datetime(2025, 7, 1, 12), datetime(2025, 7, 1, 13), mode="Full"), summer, "Europe/Berlin"
    )
    utc = rows(
        req(datetime(2025, 7, 1, 10), datetime(2025, 7, 1, 11), mode="Full", time_zone="UTC"),
        summer,
        "Europe/Berlin",
    )
    assert local == [(datetime(2025, 7, 1, 12), 1.0, 0, 192)]  # 10:00 UTC is 12:00 in Berlin (CEST)
    assert utc == [(datetime(2025, 7, 1, 10), 1.0, 0, 192)]
    windows_name = req(
        datetime(2025, 7, 1, 6), datetime(2025, 7, 1, 7), mode="Full", time_zone="Eastern Standard Time"
    )
    assert rows(windows_name, summer)[0][0] == datetime(2025, 7, 1, 6)


# -- through T-SQL: the provider's statements, unchanged ------------------------------------------


@pytest.fixture
def emulator(tmp_path):
    store = HistorianStore(tmp_path / "historian.db")
    store.add_tag("A001", 1, key=1, unit="degC")
    store.add_tag("Sys'Tag", 1)
    store.add_points("A001", POINTS)
    return HistorianEmulator(store, users={"reader": "pw"}), Session("reader", "Runtime", 51)


def run(emulator, statement):
    em, session = emulator
    sql = str(statement.compile(dialect=pymssql.dialect(), compile_kwargs={"literal_binds": True}))
    (result,) = list(em.execute(sql, {}, session))
    return result


def test_the_providers_query_reads_exactly_the_stored_values(emulator):
    result = run(emulator, Historian().history_query(["A001"], at(20), at(40)))
    assert len(result.columns) == 33
    got = [(r[0], r[2], r[4]) for r in result.rows]
    # no initial value at 00:20, and 00:27's unchanged 1.2 and 00:29's NULL are there (Full)
    assert got == [(wall(m), v, 0) for m, v, _ in SAMPLE if 20 <= m < 40]
    assert {r[11] for r in result.rows} == {"Full"}  # wwRetrievalMode echoes the query's
    assert emulator[0].history_queries[-1].mode == "Full"


def test_the_providers_query_on_a_window_before_any_value_is_empty(emulator):
    assert list(run(emulator, Historian().history_query(["A001"], at(0), at(5))).rows) == []


def test_any_chunking_of_the_providers_query_gives_the_same_rows(emulator):
    whole = list(run(emulator, Historian().history_query(["A001"], at(0), at(60))).rows)
    for step in (1, 3, 7, 20):
        parts = [
            row
            for m in range(0, 60, step)
            for row in run(emulator, Historian().history_query(["A001"], at(m), at(min(m + step, 60)))).rows
        ]
        assert sorted(parts) == sorted(whole), step
    assert len(whole) == len(SAMPLE)


def test_counts_by_hour_through_the_emulator(emulator):
    result = run(emulator, Historian().count_query(["A001"], at(0), at(60), by_hour=True))
    assert list(result.rows) == [("A001", "2009-09-12 00:00:00", len(SAMPLE))]


def test_tag_discovery_and_unknown_objects(emulator):
    names = [r[0] for r in run(emulator, Historian().tags_query(["analog"], exclude_system=False)).rows]
    assert names == ["A001", "Sys'Tag"]
    em, session = emulator
    with pytest.raises(SqlError) as err:
        list(em.execute("SELECT * FROM NoSuchTable", {}, session))
    assert err.value.number == 208 and "NoSuchTable" in err.value.message


def test_a_history_query_without_tags_is_refused(emulator):
    em, session = emulator
    with pytest.raises(SqlError, match="must name its tags"):
        list(em.execute("SELECT * FROM History WHERE DateTime >= '2009-09-12'", {}, session))


def test_rpc_parameters_are_bound(emulator):
    em, session = emulator
    sql = "SELECT DateTime, Value FROM History WHERE TagName = @P1 AND DateTime >= @P2 AND DateTime < @P3 AND wwRetrievalMode = @P4"
    (result,) = list(
        em.execute(sql, {"@P1": "A001", "@P2": wall(21), "@P3": wall(25), "@P4": "full"}, session)
    )
    assert list(result.rows) == [(wall(21), 2.0), (wall(24), 1.2)]


def test_logins(emulator):
    em, _ = emulator
    assert em.login("reader", "pw", None) == "Runtime"
    with pytest.raises(SqlError) as err:
        em.login("reader", "wrong", None)
    assert err.value.number == 18456
    with pytest.raises(SqlError) as err:
        em.login("reader", "pw", "NoSuchDb")
    assert err.value.number == 4060


def test_between_is_inclusive_on_both_ends_and_residual_predicates_apply(emulator):
    """The seed's query shape: BETWEEN, Value IS NOT NULL (applied to the retrieved rows), ORDER BY."""
    em, session = emulator
    sql = (
        "SELECT DateTime, Value FROM History WHERE TagName IN ('A001') "
        "AND DateTime BETWEEN '2009-09-12 00:21' AND '2009-09-12 00:35' AND Value IS NOT NULL "
        "AND wwRetrievalMode = 'Delta' ORDER BY DateTime DESC"
    )
    (result,) = list(em.execute(sql, {}, session))
    assert list(result.rows) == [(wall(32), 0.6), (wall(24), 1.2), (wall(21), 2.0)]
