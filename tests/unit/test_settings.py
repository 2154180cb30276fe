"""The DAGs' settings objects: defaults, every variable, and the message of each bad value."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.settings import MissingWorkflowBackfillSettings, WonderwareBackfillSettings

UTC = timezone.utc
# The start dates that were the defaults before safe defaults (issue 9): tests of other variables
# that relied on a start date (catchup, end date) set it explicitly.
WONDERWARE_STARTED = {"WONDERWARE_BACKFILL_START_DATE": "2025-01-01"}
MISSING_WORKFLOW_STARTED = {"MISSING_WORKFLOW_BACKFILL_START_DATE": "2026-01-01"}


def test_wonderware_defaults():
    s = WonderwareBackfillSettings.from_env({})
    assert s == WonderwareBackfillSettings(
        schedule="@daily",
        start_date=None,
        end_date=None,
        catchup=False,
        max_active_runs=4,
        table="WonderwareHistory",
        retries=3,
        retry_delay=timedelta(seconds=30),
        wonderware_conn_id="wonderware_default",
        clickhouse_conn_id="clickhouse_default",
    )
    assert (s.asset_name, s.asset_uri) == (
        "clickhouse_WonderwareHistory",
        "clickhouse://clickhouse_default/WonderwareHistory",
    )


def test_missing_workflow_defaults():
    assert MissingWorkflowBackfillSettings.from_env({}) == MissingWorkflowBackfillSettings(
        schedule="@daily",
        start_date=None,
        catchup=False,
        max_active_runs=1,
        settle=timedelta(hours=1),
        spec_variable="missing_workflow_backfill_spec",
        spec_file=None,
        table="backfill_requests",
        temporal_conn_id="temporal_default",
        clickhouse_conn_id="clickhouse_default",
    )


def test_settings_are_frozen_and_read_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", "7")
    s = WonderwareBackfillSettings.from_env()
    assert s.max_active_runs == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_active_runs = 1


@pytest.mark.parametrize(
    "name, value, field, expected",
    [
        ("WONDERWARE_BACKFILL_SCHEDULE", "0 * * * *", "schedule", "0 * * * *"),
        ("WONDERWARE_BACKFILL_SCHEDULE", "@quarterly", "schedule", "@quarterly"),
        ("WONDERWARE_BACKFILL_START_DATE", "2024-06-01", "start_date", datetime(2024, 6, 1, tzinfo=UTC)),
        ("WONDERWARE_BACKFILL_START_DATE", "2024-06-01T02:00:00+02:00", "start_date", datetime(2024, 6, 1, tzinfo=UTC)),
        ("WONDERWARE_BACKFILL_END_DATE", "2025-03-01", "end_date", datetime(2025, 3, 1, tzinfo=UTC)),
        ("WONDERWARE_BACKFILL_END_DATE", "", "end_date", None),
        ("WONDERWARE_BACKFILL_CATCHUP", "false", "catchup", False),
        ("WONDERWARE_BACKFILL_CATCHUP", "0", "catchup", False),
        ("WONDERWARE_BACKFILL_CATCHUP", "YES", "catchup", True),
        ("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", " 12 ", "max_active_runs", 12),
        ("WONDERWARE_BACKFILL_TABLE", "plant.History", "table", "plant.History"),
        ("WONDERWARE_BACKFILL_RETRIES", "0", "retries", 0),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "1", "retry_delay", timedelta(seconds=1)),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "1.5", "retry_delay", timedelta(seconds=1.5)),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "0", "retry_delay", timedelta(0)),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "2m", "retry_delay", timedelta(minutes=2)),
        ("WONDERWARE_CONN_ID", "historian_prod", "wonderware_conn_id", "historian_prod"),
        ("CLICKHOUSE_CONN_ID", "ch_prod", "clickhouse_conn_id", "ch_prod"),
        ("WONDERWARE_BACKFILL_POOL", " historian ", "pool", "historian"),
        ("WONDERWARE_BACKFILL_POOL", "", "pool", None),
    ],
)  # fmt: skip
def test_wonderware_each_variable(name, value, field, expected):
    assert (
        getattr(WonderwareBackfillSettings.from_env({**WONDERWARE_STARTED, name: value}), field) == expected
    )


@pytest.mark.parametrize(
    "name, value, field, expected",
    [
        ("MISSING_WORKFLOW_BACKFILL_SCHEDULE", "30 2 * * *", "schedule", "30 2 * * *"),
        ("MISSING_WORKFLOW_BACKFILL_START_DATE", "2025-12-01", "start_date", datetime(2025, 12, 1, tzinfo=UTC)),
        ("MISSING_WORKFLOW_BACKFILL_CATCHUP", "true", "catchup", True),
        ("MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS", "3", "max_active_runs", 3),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "30m", "settle", timedelta(minutes=30)),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "2H", "settle", timedelta(hours=2)),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "90", "settle", timedelta(seconds=90)),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "0", "settle", None),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "off", "settle", None),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "None", "settle", None),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "", "settle", None),
        ("MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE", "reindex_spec", "spec_variable", "reindex_spec"),
        ("MISSING_WORKFLOW_BACKFILL_SPEC_FILE", "/etc/spec.json", "spec_file", "/etc/spec.json"),
        ("MISSING_WORKFLOW_BACKFILL_SPEC_FILE", "", "spec_file", None),
        ("MISSING_WORKFLOW_BACKFILL_TABLE", "ops.requests", "table", "ops.requests"),
        ("TEMPORAL_CONN_ID", "temporal_prod", "temporal_conn_id", "temporal_prod"),
        ("CLICKHOUSE_CONN_ID", "ch_prod", "clickhouse_conn_id", "ch_prod"),
    ],
)  # fmt: skip
def test_missing_workflow_each_variable(name, value, field, expected):
    env = {**MISSING_WORKFLOW_STARTED, name: value}
    assert getattr(MissingWorkflowBackfillSettings.from_env(env), field) == expected


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", "x", "WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS must be a positive integer, got 'x'"),
        ("WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS", "0", "WONDERWARE_BACKFILL_MAX_ACTIVE_RUNS must be a positive integer, got '0'"),
        ("WONDERWARE_BACKFILL_RETRIES", "-1", "WONDERWARE_BACKFILL_RETRIES must be an integer of at least 0, got '-1'"),
        ("WONDERWARE_BACKFILL_RETRIES", "2.5", "WONDERWARE_BACKFILL_RETRIES must be an integer of at least 0, got '2.5'"),
        ("WONDERWARE_BACKFILL_CATCHUP", "maybe", "Invalid WONDERWARE_BACKFILL_CATCHUP 'maybe': use true or false"),
        ("WONDERWARE_BACKFILL_START_DATE", "yesterday", "Invalid WONDERWARE_BACKFILL_START_DATE 'yesterday': use ISO 8601"),
        ("WONDERWARE_BACKFILL_END_DATE", "2025-13-01", "Invalid WONDERWARE_BACKFILL_END_DATE '2025-13-01': use ISO 8601"),
        ("WONDERWARE_BACKFILL_END_DATE", "2024-12-31", "WONDERWARE_BACKFILL_END_DATE 2024-12-31T00:00:00+00:00 is before WONDERWARE_BACKFILL_START_DATE"),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "soon", "Invalid WONDERWARE_BACKFILL_RETRY_DELAY 'soon': use a number with a unit"),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "-5", "WONDERWARE_BACKFILL_RETRY_DELAY must be a number of seconds of at least 0"),
        ("WONDERWARE_BACKFILL_RETRY_DELAY", "nan", "WONDERWARE_BACKFILL_RETRY_DELAY must be a number of seconds of at least 0"),
        ("WONDERWARE_BACKFILL_SCHEDULE", "every day", "WONDERWARE_BACKFILL_SCHEDULE must be a cron expression such as '0 * * * *' or a preset such as '@daily', got 'every day'"),
        ("WONDERWARE_BACKFILL_SCHEDULE", "@once", "WONDERWARE_BACKFILL_SCHEDULE must be a cron expression"),
        ("WONDERWARE_BACKFILL_TABLE", "History; DROP TABLE x", "Invalid WONDERWARE_BACKFILL_TABLE 'History; DROP TABLE x': use letters, digits and underscores"),
        ("WONDERWARE_BACKFILL_TABLE", " ", "WONDERWARE_BACKFILL_TABLE is set but empty: set a value or unset it for 'WonderwareHistory'"),
        ("WONDERWARE_CONN_ID", "", "WONDERWARE_CONN_ID is set but empty"),
    ],
)  # fmt: skip
def test_wonderware_bad_values_name_the_variable_and_value(name, value, message):
    with pytest.raises(ConfigurationError) as err:
        WonderwareBackfillSettings.from_env({**WONDERWARE_STARTED, name: value})
    assert message in str(err.value)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS", "two", "MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS must be a positive integer, got 'two'"),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "1 hour", "Invalid MISSING_WORKFLOW_BACKFILL_SETTLE '1 hour': use a number with a unit s, m, h, d or w"),
        ("MISSING_WORKFLOW_BACKFILL_SETTLE", "-60", "MISSING_WORKFLOW_BACKFILL_SETTLE must be a number of seconds greater than 0"),
        ("MISSING_WORKFLOW_BACKFILL_CATCHUP", "sometimes", "Invalid MISSING_WORKFLOW_BACKFILL_CATCHUP 'sometimes': use true or false"),
        ("MISSING_WORKFLOW_BACKFILL_START_DATE", "01/01/2026", "Invalid MISSING_WORKFLOW_BACKFILL_START_DATE '01/01/2026': use ISO 8601"),
        ("MISSING_WORKFLOW_BACKFILL_SCHEDULE", "61 * * * *", "MISSING_WORKFLOW_BACKFILL_SCHEDULE must be a cron expression"),
        ("MISSING_WORKFLOW_BACKFILL_TABLE", "backfill-requests", "Invalid MISSING_WORKFLOW_BACKFILL_TABLE 'backfill-requests'"),
        ("MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE", "", "MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE is set but empty"),
        ("TEMPORAL_CONN_ID", "  ", "TEMPORAL_CONN_ID is set but empty"),
    ],
)  # fmt: skip
def test_missing_workflow_bad_values_name_the_variable_and_value(name, value, message):
    with pytest.raises(ConfigurationError) as err:
        MissingWorkflowBackfillSettings.from_env({name: value})
    assert message in str(err.value)


def test_settings_import_no_airflow():
    """The DAG files build settings at parse time; reading the environment must not load Airflow."""
    code = (
        "import json, sys\n"
        "import airflow_backfill_provider.settings\n"
        "print(json.dumps([m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# --- safe defaults (issue 9): history loads only on purpose ---------------------------------------


def test_wonderware_without_a_start_date_has_no_catchup_and_no_scheduled_loads():
    s = WonderwareBackfillSettings.from_env({})
    assert (s.start_date, s.catchup, s.scheduled_loads) == (None, False, False)
    # an empty variable is unset, not "false": the default follows the start date
    assert WonderwareBackfillSettings.from_env({"WONDERWARE_BACKFILL_CATCHUP": ""}).catchup is False


def test_wonderware_start_date_turns_catchup_and_scheduled_loads_on():
    s = WonderwareBackfillSettings.from_env(WONDERWARE_STARTED)
    assert (s.start_date, s.catchup, s.scheduled_loads) == (datetime(2025, 1, 1, tzinfo=UTC), True, True)
    off = WonderwareBackfillSettings.from_env({**WONDERWARE_STARTED, "WONDERWARE_BACKFILL_CATCHUP": "off"})
    assert (off.catchup, off.scheduled_loads) == (False, True)


def test_missing_workflow_catchup_stays_off_with_a_start_date():
    """Catchup there would start real workflows for every missed interval: only when asked for."""
    s = MissingWorkflowBackfillSettings.from_env(MISSING_WORKFLOW_STARTED)
    assert (s.start_date, s.catchup) == (datetime(2026, 1, 1, tzinfo=UTC), False)


@pytest.mark.parametrize(
    "settings, prefix",
    [
        (WonderwareBackfillSettings, "WONDERWARE_BACKFILL"),
        (MissingWorkflowBackfillSettings, "MISSING_WORKFLOW_BACKFILL"),
    ],
)
def test_catchup_without_a_start_date_is_refused_naming_both_variables(settings, prefix):
    with pytest.raises(ConfigurationError) as err:
        settings.from_env({f"{prefix}_CATCHUP": "true"})
    assert str(err.value) == (
        f"{prefix}_CATCHUP is true but {prefix}_START_DATE is not set: catchup loads every interval from "
        f"the start date. Set {prefix}_START_DATE (e.g. 2025-01-01), or unset {prefix}_CATCHUP."
    )


def test_wonderware_end_date_without_a_start_date_is_accepted():
    s = WonderwareBackfillSettings.from_env({"WONDERWARE_BACKFILL_END_DATE": "2025-03-01"})
    assert (s.start_date, s.end_date, s.catchup) == (None, datetime(2025, 3, 1, tzinfo=UTC), False)


# --- the interval of a run triggered without a logical date ----------------------------------------


@pytest.mark.parametrize(
    "schedule, before, expected",
    [
        ("@daily", datetime(2025, 1, 2, 5, 3, tzinfo=UTC), (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))),
        # exactly on a boundary: the interval that ends then, as Airflow's manual data interval
        ("@daily", datetime(2025, 1, 2, tzinfo=UTC), (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))),
        ("0 0 * * *", datetime(2025, 1, 2, 0, 0, 30, tzinfo=UTC), (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))),
        ("0 * * * *", datetime(2025, 1, 2, 5, 59, tzinfo=UTC), (datetime(2025, 1, 2, 4, tzinfo=UTC), datetime(2025, 1, 2, 5, tzinfo=UTC))),
        ("@quarterly", datetime(2025, 5, 20, tzinfo=UTC), (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))),
        ("@daily", datetime(2025, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=5))), (datetime(2024, 12, 31, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))),
    ],
)  # fmt: skip
def test_last_complete_interval_matches_airflows_manual_interval(schedule, before, expected):
    """The interval of a run triggered without a logical date, as Airflow infers a manual one."""
    import pendulum
    from airflow.timetables.interval import CronDataIntervalTimetable

    from airflow_backfill_provider.settings.schedule import AIRFLOW_ONLY_PRESETS, last_complete_interval

    assert last_complete_interval(schedule, before) == expected
    airflow = CronDataIntervalTimetable(AIRFLOW_ONLY_PRESETS.get(schedule, schedule), "UTC")
    inferred = airflow.infer_manual_data_interval(run_after=pendulum.instance(before))
    assert (inferred.start, inferred.end) == expected


def test_sync_settings_defaults_and_shared_variables():
    from datetime import timedelta

    from airflow_backfill_provider.settings import WonderwareSyncSettings

    s = WonderwareSyncSettings.from_env({})
    assert (s.schedule, s.lookback, s.first_run_offset, s.tag_cache_ttl) == (
        "* * * * *", timedelta(minutes=10), timedelta(hours=1), timedelta(hours=1),
    )  # fmt: skip
    assert (s.retroactive, s.history_start, s.redis_conn_id) == (False, None, "redis_default")
    shared = WonderwareSyncSettings.from_env(
        {"WONDERWARE_BACKFILL_TABLE": "Plant1", "WONDERWARE_BACKFILL_START_DATE": "2025-01-01",
         "WONDERWARE_SYNC_TAG_CACHE_TTL": "0", "WONDERWARE_HISTORY_COLUMNS": "TagName,DateTime,Value"}
    )  # fmt: skip
    assert shared.table == "Plant1" and shared.tag_cache_ttl is None
    assert shared.history_start.isoformat() == "2025-01-01T00:00:00+00:00"  # the backfill's start date
    assert shared.history_columns == ("DateTime", "TagName", "Value")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WONDERWARE_SYNC_RETROACTIVE": "on"},
            "neither WONDERWARE_SYNC_HISTORY_START nor WONDERWARE_BACKFILL_START_DATE",
        ),
        (
            {"WONDERWARE_SYNC_TAG_TYPES": "analog,foo"},
            "WONDERWARE_SYNC_TAG_TYPES must be a comma-separated list",
        ),
        ({"WONDERWARE_SYNC_LOOKBACK": "soon"}, "WONDERWARE_SYNC_LOOKBACK"),
        # 0 is refused too: the message says so, and shows the value as typed
        (
            {"WONDERWARE_SYNC_LOOKBACK": "-600"},
            "WONDERWARE_SYNC_LOOKBACK must be a number of seconds greater than 0 or a duration such as "
            "'30s', got '-600'",
        ),
        ({"WONDERWARE_SYNC_LOOKBACK": "0"}, "greater than 0 or a duration such as '30s', got '0'"),
        ({"WONDERWARE_SYNC_SCHEDULE": "every minute"}, "WONDERWARE_SYNC_SCHEDULE must be a cron expression"),
        ({"WONDERWARE_SYNC_RETROACTIVE": "maybe"}, "WONDERWARE_SYNC_RETROACTIVE"),
    ],
)
def test_sync_settings_name_the_bad_variable(env, message):
    from airflow_backfill_provider.settings import WonderwareSyncSettings

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        WonderwareSyncSettings.from_env(env)
