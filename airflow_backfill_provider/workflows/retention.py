"""Whether Temporal can still list every execution of an interval, given the namespace's retention.

Temporal deletes a closed execution, visibility record included, once the namespace's retention has
passed since it closed. An execution of ``[start, end)`` closes at or after ``start``, so all of
them are still there while ``start >= now - retention``. Before that, executions that completed may
be gone: they would look missing, and be started again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_backfill_provider.exceptions import ConfigurationError

OVERRIDE = "allow_beyond_retention"


class BeyondRetentionError(ConfigurationError):
    """The interval starts before the oldest close time the namespace still keeps."""


def retention_problem(
    spec: str, namespace: str, start: datetime, end: datetime, *, now: datetime, retention: timedelta | None
) -> str | None:
    """Why executions of ``[start, end)`` may have been deleted, or ``None`` when none can have been.

    Refuses an interval of which any part is older than ``now - retention``, not only one that ended
    before it: executions that closed in its first hours are deleted first. A namespace that reports
    no retention cannot be checked, so it is refused too.
    """
    interval = f"The interval [{start.isoformat()}, {end.isoformat()}) of spec {spec!r}"
    if retention is None or retention <= timedelta(0):
        return (
            f"{interval} cannot be checked against Temporal namespace {namespace!r}: the namespace reports "
            "no retention, so it is unknown whether executions that completed were deleted (they would "
            "look missing and be started again)."
        )
    horizon = now - retention
    if start >= horizon:
        return None
    where = "lies wholly before" if end <= horizon else "starts before"
    return (
        f"{interval} {where} {horizon.isoformat(timespec='seconds')}, now minus the retention of Temporal "
        f"namespace {namespace!r} (its retention is {format_retention(retention)}). Temporal deletes a "
        "closed execution once the retention has passed since it closed, so executions of this interval "
        "that completed may be gone: they would look missing, and be started again."
    )


def check_retention(
    spec: str,
    namespace: str,
    start: datetime,
    end: datetime,
    now: datetime,
    retention: timedelta | None,
    allow: bool = False,
) -> str | None:
    """Refuse ``[start, end)`` if executions of it may have been deleted (see :func:`retention_problem`).

    :param allow: ``allow_beyond_retention``: do not refuse; return the warning to log instead.
    :returns: ``None`` when every execution is still kept, else (allowed) the warning.
    :raises BeyondRetentionError: saying why and how to override, when not allowed.
    """
    problem = retention_problem(spec, namespace, start, end, now=now, retention=retention)
    if problem is None:
        return None
    if allow:
        return (
            f"{problem} {OVERRIDE} is set: checking it anyway; a key whose executions were deleted is a gap."
        )
    raise BeyondRetentionError(
        f"{problem} Refused (a dry run too: it would report the same false gaps). Check an interval that "
        f"starts later, or, to check this one anyway (keys whose executions were deleted are then gaps, "
        f"and a real run replaces them), set {OVERRIDE}: the missing_workflow_backfill Param 'Check "
        f"intervals beyond the retention' (or {{\"{OVERRIDE}\": true}} in the run's conf, e.g. "
        f"airflow backfill create --dag-run-conf), or {OVERRIDE}=True on TemporalFindWorkflowGapsOperator."
    )


def format_retention(retention: timedelta) -> str:
    """``1 day``, ``30 days``, ``36h``, ``90m`` or ``45s``: the largest unit that divides it."""
    seconds = int(retention.total_seconds())
    days, rest = divmod(seconds, 86400)
    if days and not rest:
        return f"{days} day{'s' if days != 1 else ''}"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
