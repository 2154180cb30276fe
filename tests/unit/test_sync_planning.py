"""The minute-level sync's pure planning: windows, grouping, first runs, monotone claims, the fence."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.sync import (
    CLAIMED,
    DONE,
    SyncOptions,
    TagState,
    claim_rows,
    clip_to_fence,
    done_rows,
    fence_of,
    floor_to,
    lags,
    plan_sync,
    state_table_name,
    sync_state_ddl,
)

UTC = timezone.utc
H = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)  # a run's horizon, deliberately off the minute
MIN = timedelta(minutes=1)


def done(tag, *, claim, watermark, last_seen, version=2):
    return TagState(tag, claim, watermark, last_seen, DONE, version)


def test_options_parse_durations_and_name_bad_values():
    opts = SyncOptions(lookback="15m", first_run_offset=7200, max_tag_lag="2h", start_granularity="30s")
    assert (opts.lookback, opts.first_run_offset) == (timedelta(minutes=15), timedelta(hours=2))
    assert (opts.max_tag_lag, opts.start_granularity) == (timedelta(hours=2), timedelta(seconds=30))
    with pytest.raises(ConfigurationError, match=r"Invalid sync lookback '10 minutes'"):
        SyncOptions(lookback="10 minutes")
    with pytest.raises(ConfigurationError, match=r"sync first_run_offset -5.*greater than zero"):
        SyncOptions(first_run_offset=-5)
    with pytest.raises(ConfigurationError, match=r"tag_group_size 2001: use a whole number from 1 to 2000"):
        SyncOptions(tag_group_size=2001)
    with pytest.raises(ConfigurationError, match=r"tag_group_size True"):
        SyncOptions(tag_group_size=True)


def test_first_run_starts_an_offset_before_the_horizon_rounded_down():
    plan = plan_sync(["B", "A", "A"], {}, H)
    assert plan.horizon == H
    assert [(g.start, g.end, g.tags) for g in plan.groups] == [
        (datetime(2025, 6, 1, 11, tzinfo=UTC), H, ("A", "B"))
    ]
    assert plan.first_run == ("A", "B") and plan.version == 1
    custom = plan_sync(["A"], {}, H, SyncOptions(first_run_offset="3h", start_granularity="1h"))
    assert custom.groups[0].start == datetime(2025, 6, 1, 9, tzinfo=UTC)


def test_window_follows_each_tags_newest_row_and_lookback():
    prev = H - MIN
    states = {
        # active: newest row seconds before the previous horizon
        "active": done("active", claim=H - 12 * MIN, watermark=prev, last_seen=prev - timedelta(seconds=5)),
        # lagging: its rows arrive 30 minutes late; it keeps its own place
        "lagging": done("lagging", claim=H - 42 * MIN, watermark=prev, last_seen=prev - 30 * MIN),
        # quiet: no row for a day; its window is bounded by the lag allowance
        "quiet": done("quiet", claim=H - 72 * MIN, watermark=prev, last_seen=prev - timedelta(days=1)),
        # never had a row at all
        "empty": done("empty", claim=H - 72 * MIN, watermark=prev, last_seen=None),
    }
    plan = plan_sync(states, states, H)
    assert dict(plan.starts) == {
        "active": datetime(2025, 6, 1, 11, 49, tzinfo=UTC),  # 11:59:25 - 10m, rounded down
        "lagging": datetime(2025, 6, 1, 11, 19, tzinfo=UTC),
        "quiet": datetime(2025, 6, 1, 10, 49, tzinfo=UTC),  # 11:59:30 - 1h - 10m
        "empty": datetime(2025, 6, 1, 10, 49, tzinfo=UTC),
    }
    assert [(g.start.strftime("%H:%M"), g.tags) for g in plan.groups] == [
        ("10:49", ("empty", "quiet")),
        ("11:19", ("lagging",)),
        ("11:49", ("active",)),
    ]
    assert all(g.end == H for g in plan.groups)
    assert plan.first_run == () and plan.held == () and plan.version == 3


def test_tags_with_one_start_share_reads_of_bounded_size():
    states = {
        t: done(t, claim=H - 20 * MIN, watermark=H - MIN, last_seen=H - MIN - timedelta(seconds=s))
        for s, t in enumerate(f"T{i:02d}" for i in range(7))
    }
    plan = plan_sync(states, states, H, SyncOptions(tag_group_size=3))
    assert [g.tags for g in plan.groups] == [("T00", "T01", "T02"), ("T03", "T04", "T05"), ("T06",)]
    assert len({g.start for g in plan.groups}) == 1


def test_a_claimed_run_that_never_finished_is_read_again_from_its_claim():
    crashed = {"A": TagState("A", H - 70 * MIN, None, None, CLAIMED, 1)}
    plan = plan_sync(["A", "B"], crashed, H + 5 * MIN)
    assert plan.starts["A"] == H - 70 * MIN  # not the later first-run start of this horizon
    assert plan.starts["B"] == floor_to(H + 5 * MIN - timedelta(hours=1), MIN)
    assert plan.first_run == ("B",)
    # a run that died after its claim, on a tag with history: its previous watermark is kept
    midway = {"A": TagState("A", H - 11 * MIN, H - MIN, H - MIN, CLAIMED, 5)}
    assert plan_sync(["A"], midway, H).starts["A"] == H - 11 * MIN


def test_claims_never_go_down_even_when_the_lookback_grows():
    state = {"A": done("A", claim=H - 11 * MIN, watermark=H - MIN, last_seen=H - MIN)}
    plan = plan_sync(["A"], state, H, SyncOptions(lookback="1h"))
    assert plan.starts["A"] == H - 11 * MIN and plan.held == ("A",)
    # rounding down alone never counts as held, but is still kept at the claim
    state = {"A": done("A", claim=H - 10 * MIN, watermark=H, last_seen=H)}
    plan = plan_sync(["A"], state, H + MIN)
    assert plan.starts["A"] == H - 10 * MIN and plan.held == ()


def test_claims_are_monotone_over_many_runs_with_changing_settings():
    rng = random.Random(7)
    states: dict[str, TagState] = {}
    horizon = H
    claims: dict[str, list[datetime]] = {}
    tags = [f"T{i}" for i in range(12)]
    for run in range(200):
        options = SyncOptions(
            lookback=rng.choice(["1m", "10m", "1h"]),
            max_tag_lag=rng.choice(["1m", "1h", "6h"]),
            first_run_offset=rng.choice(["10m", "1h"]),
            start_granularity=rng.choice(["1s", "1m", "15m"]),
        )
        horizon += timedelta(seconds=rng.choice([0, 30, 60, 600]))
        active = rng.sample(tags, 8)
        plan = plan_sync(active, states, horizon, options)
        for row in claim_rows(plan, f"r{run}"):
            claims.setdefault(row.tag, []).append(row.claim_start)
            states[row.tag] = row
        for group in plan.groups:
            if rng.random() < 0.2:  # this group's read failed: its tags stay claimed
                continue
            seen = {
                t: horizon - timedelta(seconds=rng.randint(0, 4000)) for t in group.tags if rng.random() < 0.8
            }
            for row in done_rows(plan, group, seen, f"r{run}"):
                assert row.claim_start == states[row.tag].claim_start
                states[row.tag] = row
    for tag, history in claims.items():
        assert history == sorted(history), tag
        assert all(s.watermark is None or s.watermark <= horizon for s in states.values())


def test_claim_and_done_rows_carry_the_state_forward():
    prev = {"A": done("A", claim=H - 11 * MIN, watermark=H - MIN, last_seen=H - 2 * MIN, version=4)}
    plan = plan_sync(["A", "B"], prev, H)
    claims = {r.tag: r for r in claim_rows(plan, "run-1")}
    assert claims["A"] == TagState("A", plan.starts["A"], H - MIN, H - 2 * MIN, CLAIMED, 5, "run-1")
    assert claims["B"] == TagState("B", plan.starts["B"], None, None, CLAIMED, 5, "run-1")
    rows = [r for g in plan.groups for r in done_rows(plan, g, {"B": H - timedelta(seconds=3)}, "run-1")]
    by_tag = {r.tag: r for r in rows}
    # A had no row in this window: its newest row stays the one seen before
    assert by_tag["A"] == TagState("A", plan.starts["A"], H, H - 2 * MIN, DONE, 6, "run-1")
    assert by_tag["B"] == TagState("B", plan.starts["B"], H, H - timedelta(seconds=3), DONE, 6, "run-1")
    # a horizon behind the watermark (clock went back) never moves it back
    back = plan_sync(["A"], {"A": by_tag["A"]}, H - timedelta(seconds=20))
    assert done_rows(back, back.groups[0], {}, "run-2")[0].watermark == H


def test_a_window_that_starts_at_the_horizon_is_skipped():
    state = {"A": done("A", claim=H, watermark=H + 20 * MIN, last_seen=H + 20 * MIN)}
    plan = plan_sync(["A", "B"], state, H)
    assert plan.skipped == ("A",) and plan.tags == ("B",)
    assert [r.tag for r in claim_rows(plan, "r")] == ["B"]


def test_no_tags_and_bad_names_are_errors():
    with pytest.raises(ConfigurationError, match="No tags to sync"):
        plan_sync([], {}, H)
    with pytest.raises(ConfigurationError, match=r"non-empty strings, got \[''"):
        plan_sync(["", "A"], {}, H)
    with pytest.raises(ConfigurationError, match="Invalid sync horizon 'soon'"):
        plan_sync(["A"], {}, "soon")


def test_fence_is_the_lowest_claim_of_the_chunks_tags():
    claims = {"A": H - 11 * MIN, "B": H - 70 * MIN}
    assert fence_of(claims, ["A", "B", "C"]) == H - 70 * MIN
    assert fence_of(claims, ["A"]) == H - 11 * MIN
    assert fence_of(claims, ["C"]) is None  # a tag the sync does not know: no fence
    assert fence_of({}, ["A"]) is None


def test_clipping_a_backfill_window_at_the_fence():
    start, end = H - timedelta(days=1), H
    assert clip_to_fence(start, end, None) == (end, None)
    assert clip_to_fence(start, end, end) == (end, None)
    assert clip_to_fence(start, end, end + MIN) == (end, None)
    clipped, message = clip_to_fence(start, end, H - 11 * MIN)
    assert clipped == H - 11 * MIN
    assert (
        "ends at the minute-level sync's fence 2025-06-01T11:49:30+00:00 instead of 2025-06-01T12:00:30"
        in message
    )
    nothing, message = clip_to_fence(start, end, start)
    assert nothing is None and "this chunk writes nothing" in message
    assert clip_to_fence(start, end, start - MIN)[0] is None


def test_state_table_and_helpers():
    assert state_table_name("WonderwareHistory") == "WonderwareHistory_sync_state"
    assert state_table_name("plant.History") == "plant.History_sync_state"
    with pytest.raises(ConfigurationError, match="Invalid table name"):
        state_table_name("bad name")
    ddl = sync_state_ddl("plant.History_sync_state")
    assert "CREATE TABLE IF NOT EXISTS `plant`.`History_sync_state`" in ddl
    assert "ReplacingMergeTree(version)" in ddl and "ORDER BY TagName" in ddl
    assert floor_to(H, MIN) == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert floor_to(H, timedelta(hours=1)) == datetime(2025, 6, 1, 12, tzinfo=UTC)
    # the oldest tag's lag, and which tag: a tag that stopped sending is what an alert must see
    quiet = lags(
        H, {"new": None, "current": H - MIN, "quiet": H - 128 * timedelta(seconds=1), "b": H - 2 * MIN}
    )
    assert quiet == {"oldest_seconds": 128.0, "oldest_tag": "quiet", "freshest_seconds": 60.0}
    assert lags(H, {"new": None}) == {"oldest_seconds": None, "oldest_tag": None, "freshest_seconds": None}
