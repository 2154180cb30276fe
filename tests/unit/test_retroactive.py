"""The retroactive backfill's pure parts: new names, pending requests, request ids, the run's conf,
and the interval a reload starts from."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from airflow_backfill_provider.historian.retroactive import (
    COLUMN,
    KNOWN,
    PENDING,
    SCHEDULED,
    TAG,
    KnownName,
    known_table_name,
    new_names,
    pending_requests,
    request_id,
    tag_run_conf,
)
from airflow_backfill_provider.settings.schedule import interval_start

UTC = timezone.utc


def test_new_names_are_exact_and_sorted():
    known = {"Boiler*Temp": KnownName(KNOWN, "", 1)}
    assert new_names(["b [x]", "Boiler*Temp", "A?", "b [x]"], known) == ["A?", "b [x]"]
    assert new_names(["Boiler*Temp"], known) == []


def test_pending_requests_group_names_by_request_and_skip_scheduled_ones():
    known = {
        "a": KnownName(PENDING, "r1", 2),
        "b": KnownName(PENDING, "r1", 2),
        "c": KnownName(PENDING, "r2", 3),
        "d": KnownName(SCHEDULED, "r0", 4),
        "e": KnownName(KNOWN, "", 1),
    }
    assert pending_requests(known) == {"r1": ["a", "b"], "r2": ["c"]}


def test_request_ids_are_stable_valid_run_ids_that_hide_the_names():
    tags = ["100%_Done [Line-1]", "Boiler*Temp"]
    assert request_id(TAG, tags) == request_id(TAG, list(reversed(tags)))
    assert request_id(TAG, tags) != request_id(TAG, tags[:1]) != request_id(COLUMN, tags[:1])
    assert re.fullmatch(r"retroactive__tags__[0-9a-f]{16}", request_id(TAG, tags))
    assert request_id(COLUMN, ["Quality"]).startswith("retroactive__columns__")


def test_tag_run_conf_is_the_exact_name_param_and_an_explicit_window():
    conf = tag_run_conf(
        ["b*", "a[1]"], datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, 12, tzinfo=UTC)
    )
    assert conf == {
        "tags": ["a[1]", "b*"],
        "range_start": "2025-01-01T00:00:00+00:00",
        "range_end": "2025-06-01T12:00:00+00:00",
        "dry_run": False,
    }
    assert known_table_name("WonderwareHistory") == "WonderwareHistory_sync_known"


def test_interval_start_is_the_boundary_at_or_before_the_instant():
    at = datetime(2026, 11, 30, 1, 30, tzinfo=UTC)
    assert interval_start("@daily", at) == datetime(2026, 11, 30, tzinfo=UTC)
    assert interval_start("@daily", datetime(2026, 11, 30, tzinfo=UTC)) == datetime(2026, 11, 30, tzinfo=UTC)
    assert interval_start("0 */6 * * *", at) == datetime(2026, 11, 30, tzinfo=UTC)
    assert interval_start("@quarterly", at) == datetime(2026, 10, 1, tzinfo=UTC)
