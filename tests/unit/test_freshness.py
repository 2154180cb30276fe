"""The freshness core: the SQL text, tags after rendering, and the lag arithmetic and messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.freshness import (
    MAX_NAMED,
    FreshnessReport,
    normalize_tags,
    recent_sql,
    table_newest_sql,
    tags_newest_sql,
)

UTC = timezone.utc
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)


def ago(**kwargs) -> datetime:
    return NOW - timedelta(**kwargs)


def test_sql_text_is_pinned():
    since = "DateTime >= {since:DateTime64(6, 'UTC')}"
    assert recent_sql("WonderwareHistory", per_tag=False) == (
        f"SELECT max(DateTime), count() FROM `WonderwareHistory` WHERE {since}"
    )
    assert recent_sql("H", per_tag=True) == (
        f"SELECT TagName, max(DateTime) FROM `H` WHERE TagName IN {{tags:Array(String)}} AND {since} "
        "GROUP BY TagName"
    )
    # Nothing but max and count: ClickHouse answers it from part metadata.
    assert table_newest_sql("db.H") == "SELECT max(DateTime), count() FROM `db`.`H`"
    # One branch per tag, each read backwards along the key and stopped after one row.
    assert tags_newest_sql("H", 2) == (
        "(SELECT TagName, DateTime FROM `H` WHERE TagName = {t0:String} "
        "ORDER BY TagName DESC, DateTime DESC LIMIT 1) UNION ALL "
        "(SELECT TagName, DateTime FROM `H` WHERE TagName = {t1:String} "
        "ORDER BY TagName DESC, DateTime DESC LIMIT 1)"
    )


def test_sql_refuses_a_table_name_that_is_not_an_identifier():
    for build in (
        lambda t: recent_sql(t, per_tag=False),
        table_newest_sql,
        lambda t: tags_newest_sql(t, 1),
    ):
        with pytest.raises(ConfigurationError, match=r"Invalid table name 'H` ; DROP'"):
            build("H` ; DROP")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("Tank*[1]", ("Tank*[1]",)),  # one name, glob characters and all
        (["B", "A", "B"], ("B", "A")),
        (("A",), ("A",)),
    ],
)
def test_normalize_tags(value, expected):
    assert normalize_tags(value) == expected


@pytest.mark.parametrize("value", [[], "", "  ", ["A", ""], ["A", 3], {"A": 1}, 5])
def test_normalize_tags_rejects_what_names_no_tag(value):
    with pytest.raises(ConfigurationError, match="Invalid tags"):
        normalize_tags(value)


def test_overall_fresh_and_stale_around_the_threshold():
    fresh = FreshnessReport("H", NOW, FIVE_MIN, ago(minutes=4, seconds=59))
    assert fresh.fresh and fresh.lag_seconds == 299
    assert fresh.message == "H is fresh: newest row 2026-11-30T11:55:01+00:00, lag 4m59s <= max_lag 5m."
    edge = FreshnessReport("H", NOW, FIVE_MIN, ago(minutes=5))
    assert edge.fresh  # "younger than or equal to" the threshold passes
    stale = FreshnessReport("H", NOW, FIVE_MIN, ago(minutes=5, seconds=1))
    assert not stale.fresh
    assert stale.message == "H is stale: newest row 2026-11-30T11:54:59+00:00, lag 5m1s > max_lag 5m."
    assert stale.stale == {}  # overall mode names no tags


def test_empty_table_is_stale():
    report = FreshnessReport("H", NOW, FIVE_MIN, None)
    assert not report.fresh and report.lag_seconds is None
    assert report.message == "H is stale: it holds no rows at all (max_lag 5m)."
    assert report.to_xcom()["newest"] is None and report.to_xcom()["lag_seconds"] is None


def test_per_tag_every_tag_must_be_fresh_and_a_tag_without_rows_is_stale():
    newest = {"A": ago(minutes=1), "B": ago(minutes=3), "C": ago(hours=2, minutes=5), "D": None}
    report = FreshnessReport("H", NOW, FIVE_MIN, newest)
    assert not report.fresh
    assert report.stale == {"C": 7500.0, "D": None}
    assert report.message == (
        "H is stale for 2 of 4 tag(s) (max_lag 5m): C lag 2h5m (newest 2026-11-30T09:55:00+00:00), D no rows."
    )
    xcom = report.to_xcom()
    assert xcom["stale"] == {"C": 7500.0, "D": None} and xcom["stale_count"] == 2
    assert xcom["oldest_tag"] == "D" and xcom["lag_seconds"] is None

    ok = FreshnessReport("H", NOW, FIVE_MIN, {"A": ago(minutes=1), "B": ago(minutes=3)})
    assert ok.fresh and ok.deciding == ("B", ago(minutes=3)) and ok.lag_seconds == 180
    assert "fresh for all 2 tag(s): the oldest newest row is B's" in ok.message


def test_many_stale_tags_are_named_up_to_a_limit():
    newest = {f"T{i:03}": ago(hours=1) for i in range(MAX_NAMED + 5)}
    report = FreshnessReport("H", NOW, FIVE_MIN, newest)
    assert report.message.endswith("and 5 more.")
    assert "T000 lag 1h" in report.message and f"T{MAX_NAMED:03}" not in report.message
    xcom = report.to_xcom()
    assert len(xcom["stale"]) == MAX_NAMED and xcom["stale_count"] == MAX_NAMED + 5


def test_a_row_from_the_future_is_fresh_but_reported():
    report = FreshnessReport("H", NOW, FIVE_MIN, NOW + timedelta(hours=1))
    assert report.fresh and report.lag_seconds == 0
    assert "in the future: check the historian's clock" in report.message
    # Within a minute of the checker's clock is not skew, just a row written during the check.
    assert not FreshnessReport("H", NOW, FIVE_MIN, NOW + timedelta(seconds=2)).future


def test_xcom_is_small_and_json_ready():
    import json

    report = FreshnessReport("H", NOW, FIVE_MIN, ago(seconds=42.5))
    assert report.to_xcom() == {
        "table": "H",
        "fresh": True,
        "checked_at": "2026-11-30T12:00:00+00:00",
        "newest": "2026-11-30T11:59:17.500000+00:00",
        "lag_seconds": 42.5,
        "max_lag_seconds": 300.0,
    }
    json.dumps(report.to_xcom())
