"""An interval is checked only while Temporal still keeps every execution of it (issue 17, item 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.workflows.retention import (
    BeyondRetentionError,
    check_retention,
    format_retention,
    retention_problem,
)

NOW = datetime(2026, 12, 7, 6, 30, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def problem(start: datetime, end: datetime, retention: timedelta | None = DAY) -> str | None:
    return retention_problem("reindex", "ingestion", start, end, now=NOW, retention=retention)


def test_an_interval_that_starts_at_the_horizon_or_later_is_fine():
    assert problem(NOW - DAY, NOW) is None
    assert problem(NOW - timedelta(hours=3), NOW - timedelta(hours=1)) is None


def test_an_interval_wholly_beyond_the_retention_is_named_with_the_namespace_and_retention():
    start, end = datetime(2026, 12, 3, tzinfo=timezone.utc), datetime(2026, 12, 4, tzinfo=timezone.utc)
    assert problem(start, end) == (
        "The interval [2026-12-03T00:00:00+00:00, 2026-12-04T00:00:00+00:00) of spec 'reindex' lies wholly "
        "before 2026-12-06T06:30:00+00:00, now minus the retention of Temporal namespace 'ingestion' (its "
        "retention is 1 day). Temporal deletes a closed execution once the retention has passed since it "
        "closed, so executions of this interval that completed may be gone: they would look missing, and "
        "be started again."
    )


def test_an_interval_that_only_starts_beyond_the_retention_is_a_problem_too():
    """Its executions that closed in its first hours are the first to be deleted."""
    text = problem(NOW - DAY - timedelta(seconds=1), NOW - timedelta(hours=2))
    assert text is not None and "starts before 2026-12-06T06:30:00+00:00" in text


def test_a_namespace_without_a_retention_cannot_be_checked():
    for retention in (None, timedelta(0)):
        text = problem(NOW - timedelta(hours=2), NOW - timedelta(hours=1), retention)
        assert text is not None and "reports no retention" in text and "'ingestion'" in text


@pytest.mark.parametrize(
    ("retention", "text"),
    [
        (DAY, "1 day"),
        (timedelta(days=30), "30 days"),
        (timedelta(hours=36), "36h"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
    ],
)
def test_format_retention(retention, text):
    assert format_retention(retention) == text


def test_the_refusal_is_a_configuration_error_that_says_how_to_override():
    """A ConfigurationError, so the operator's fail_without_retry() fails the task at once."""
    start, end = NOW - 3 * DAY, NOW - 2 * DAY
    with pytest.raises(BeyondRetentionError) as refused:
        check_retention("reindex", "ingestion", start, end, NOW, DAY)
    assert isinstance(refused.value, ConfigurationError)
    message = str(refused.value)
    assert message.startswith(problem(start, end))
    assert "a dry run too" in message
    assert "allow_beyond_retention" in message and '{"allow_beyond_retention": true}' in message
    assert "allow_beyond_retention=True on TemporalFindWorkflowGapsOperator" in message


def test_allowed_it_is_a_warning_and_within_retention_nothing():
    start, end = NOW - 3 * DAY, NOW - 2 * DAY
    warning = check_retention("reindex", "ingestion", start, end, NOW, DAY, allow=True)
    assert warning == problem(start, end) + (
        " allow_beyond_retention is set: checking it anyway; a key whose executions were deleted is a gap."
    )
    assert check_retention("reindex", "ingestion", NOW - DAY, NOW, NOW, DAY) is None


def test_the_module_imports_neither_airflow_nor_temporal():
    code = (
        "import json, sys\nimport airflow_backfill_provider.workflows.retention\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert not [m for m in loaded if m == "airflow" or m.startswith(("airflow.", "temporalio"))]
