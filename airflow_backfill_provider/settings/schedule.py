"""Cron schedules of the DAGs: which expressions are valid, and the interval a manual run covers.

No Airflow import: the same rules serve the settings (at parse time) and the tasks (at run time).
"""

from __future__ import annotations

from datetime import datetime, timezone

from croniter import croniter

# Airflow expands these presets itself before croniter sees them; croniter knows the others.
AIRFLOW_ONLY_PRESETS = {"@quarterly": "0 0 1 */3 *"}


def is_valid_cron(expression: str) -> bool:
    """True for a cron expression or a preset that Airflow's cron timetables accept."""
    return bool(croniter.is_valid(AIRFLOW_ONLY_PRESETS.get(expression, expression)))


def last_complete_interval(expression: str, before: datetime) -> tuple[datetime, datetime]:
    """The last interval of a UTC cron schedule that has ended at ``before``: ``[start, end)``.

    What Airflow's ``CronDataIntervalTimetable.infer_manual_data_interval`` gives a manual run
    triggered at ``before``, so a run triggered without a logical date covers the same interval as
    one triggered with the logical date ``before``. ``before`` exactly on a boundary ends the interval.
    """
    cron = AIRFLOW_ONLY_PRESETS.get(expression, expression)
    at = before.astimezone(timezone.utc)
    previous = croniter(cron, at).get_prev(datetime)
    end = at if croniter(cron, previous).get_next(datetime) == at else previous
    start = croniter(cron, end).get_prev(datetime)
    return start, end


def interval_start(expression: str, at: datetime) -> datetime:
    """The start of the UTC cron interval that holds ``at`` (``at`` itself when on a boundary)."""
    cron = AIRFLOW_ONLY_PRESETS.get(expression, expression)
    at = at.astimezone(timezone.utc)
    previous = croniter(cron, at).get_prev(datetime)
    return at if croniter(cron, previous).get_next(datetime) == at else previous
