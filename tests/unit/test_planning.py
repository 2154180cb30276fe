from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.historian.planning import (
    plan_chunks,
    resolve_window,
    select_tags,
    summarize,
)
from airflow_backfill_provider.utils import parse_duration, to_utc

UTC = timezone.utc
DAY = datetime(2025, 1, 1, tzinfo=UTC)


def test_chunks_tile_the_interval_exactly():
    tags = [f"T{i:03d}" for i in range(23)]
    chunks = plan_chunks(DAY, DAY + timedelta(days=1), tags, window="5h", tag_group_size=10)
    # 24h / 5h -> 5 windows (last one 4h), 23 tags / 10 -> 3 groups
    assert len(chunks) == 15
    windows = sorted({(c.window_start, c.window_end) for c in chunks})
    assert windows[0][0] == DAY.isoformat()
    assert windows[-1][1] == (DAY + timedelta(days=1)).isoformat()
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert end == start  # contiguous, no gap, no overlap
    for ws, we in windows:
        covered = sorted(t for c in chunks if (c.window_start, c.window_end) == (ws, we) for t in c.tags)
        assert covered == sorted(tags)  # every tag exactly once per window


def test_plan_is_deterministic_and_ids_unique():
    tags = ["b", "a", "c", "a"]
    one = plan_chunks("2025-01-01", "2025-01-02", tags, window="6h", tag_group_size=2)
    two = plan_chunks(
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00+00:00",
        list(reversed(tags)),
        window="6h",
        tag_group_size=2,
    )
    assert one == two
    assert len({c.chunk_id for c in one}) == len(one)
    assert one[0].tags == ("a", "b")


def test_plan_empty_tags_gives_no_chunks():
    assert plan_chunks(DAY, DAY + timedelta(hours=1), []) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": "0h"}, "greater than zero"),
        ({"window": "6 hours"}, "Invalid chunk window '6 hours'"),
        ({"tag_group_size": 0}, "tag_group_size 0"),
        ({"max_chunks": 3}, "more than the limit of 3"),
    ],
)
def test_plan_rejects_bad_input_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_chunks(DAY, DAY + timedelta(days=1), ["a", "b"], **{"window": "1h", **kwargs})


def test_plan_rejects_reversed_interval():
    with pytest.raises(ValueError, match="not before"):
        plan_chunks(DAY, DAY, ["a"])


def test_parse_duration_and_to_utc():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration(30) == timedelta(seconds=30)
    assert to_utc("2025-01-01T02:00:00+02:00") == DAY
    assert to_utc(datetime(2025, 1, 1)) == DAY
    with pytest.raises(ValueError, match="'yesterday'"):
        to_utc("yesterday")


def test_select_tags_globs_case_insensitive():
    tags = ["Boiler.Temp", "boiler.Pressure", "Pump.Flow", "SysTimeSec", "Pump.State"]
    assert select_tags(tags, include=["boiler.*"]) == ["Boiler.Temp", "boiler.Pressure"]
    assert select_tags(tags, exclude=["*.state", "sys*"]) == ["Boiler.Temp", "Pump.Flow", "boiler.Pressure"]
    assert select_tags(tags, include=["Pump*"], exclude=["*Flow"]) == ["Pump.State"]


def test_resolve_window_prefers_params_and_explains_missing():
    assert resolve_window("2025-01-01", "2025-01-02", None, None) == (DAY, DAY + timedelta(days=1))
    assert resolve_window(None, None, DAY, DAY + timedelta(hours=1)) == (DAY, DAY + timedelta(hours=1))
    with pytest.raises(ValueError, match="both range_start and range_end"):
        resolve_window("2025-01-01", None, DAY, DAY)
    with pytest.raises(ValueError, match="no data interval"):
        resolve_window(None, None, None, None)
    with pytest.raises(ValueError, match="interval timetable"):
        resolve_window(None, None, DAY, DAY)


def test_summarize_counts_missing_results_as_failed():
    s = summarize(
        ["c1", "c2", "c3", "c4"],
        [{"chunk_id": "c1", "rows": 10, "seconds": 1.0}, None, {"chunk_id": "c3", "rows": 5, "seconds": 0.5}],
        duration_seconds=3.0,
    )
    assert (s.chunks_total, s.chunks_ok, s.chunks_failed) == (4, 2, 2)
    assert s.failed_chunk_ids == ("c2", "c4")
    assert s.success_rate == 0.5
    assert s.rows == 15
    assert s.rows_per_second == 5.0


def test_summarize_empty_plan_is_success():
    s = summarize([], [], 0.0)
    assert s.success_rate == 1.0 and s.chunks_failed == 0


# --- limits and messages (issue 9) ----------------------------------------------------------------


@pytest.mark.parametrize("size", [2001, 5000])
def test_tag_group_size_above_2000_is_refused_with_the_reason(size):
    with pytest.raises(ValueError) as err:
        plan_chunks(DAY, DAY + timedelta(days=1), ["a"], window="1d", tag_group_size=size)
    assert str(err.value) == (
        f"Invalid tag_group_size {size}: at most 2000 tags per chunk, because SQL Server accepts at most "
        "2,100 parameters in one query. Use e.g. 500, or split the tags."
    )
    assert len(plan_chunks(DAY, DAY + timedelta(days=1), ["a"], window="1d", tag_group_size=2000)) == 1


def test_reversed_range_gets_advice_about_the_range_not_timetables():
    with pytest.raises(ValueError) as err:
        resolve_window("2025-01-02T00:00:00Z", "2025-01-01T00:00:00Z", DAY, DAY + timedelta(days=1))
    message = str(err.value)
    assert message == (
        "range_end '2025-01-01T00:00:00Z' is not after range_start '2025-01-02T00:00:00Z': the window is "
        "[range_start, range_end), end exclusive. Swap them, or set range_end later."
    )
    assert "timetable" not in message
    with pytest.raises(ValueError, match="is not after range_start"):
        resolve_window("2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", None, None)


def test_resolve_window_falls_back_to_the_default_interval():
    default = (DAY, DAY + timedelta(days=1))
    assert resolve_window(None, None, None, None, default_interval=default) == default
    # the data interval, when there is one, wins; explicit Params win over both
    hour = (DAY, DAY + timedelta(hours=1))
    assert resolve_window(None, None, *hour, default_interval=default) == hour
    assert resolve_window("2025-03-01", "2025-03-02", None, None, default_interval=default)[0] == datetime(
        2025, 3, 1, tzinfo=UTC
    )


def test_summarize_reports_the_rows_a_dry_run_would_load():
    dry = [
        {"chunk_id": "c1", "rows": 0, "source_rows": 40, "dry_run": True},
        {"chunk_id": "c2", "rows": 0, "source_rows": 2, "dry_run": True},
    ]
    s = summarize(["c1", "c2"], dry, 1.0)
    assert (s.rows, s.source_rows) == (0, 42)
    real = [{"chunk_id": "c1", "rows": 40}, {"chunk_id": "c2", "rows": 2}]
    assert summarize(["c1", "c2"], real, 1.0).source_rows == 42
