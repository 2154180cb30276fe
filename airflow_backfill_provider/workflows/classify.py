"""Classifying each key of a spec from its executions and the history points of their runs.

The LeapBackfill idea (seed 000) on Temporal: for every key, the interval should hold one
successful execution. Each run's history gives its start point (``WorkflowExecutionStarted``) and
its success point (``WorkflowExecutionCompleted``); a key with no success point anywhere is a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from airflow_backfill_provider.utils import iso
from airflow_backfill_provider.workflows.spec import (
    DEFAULT_MAX_ATTEMPTS,
    replacement_attempt,
    replacement_workflow_id,
)
from airflow_backfill_provider.workflows.status import (
    CLASSES,
    FAILURE_STATUSES,
    GAP_CLASSES,
    KeyClass,
    WorkflowStatus,
)

_CLASS_OF_STATUS = {
    WorkflowStatus.FAILED: KeyClass.FAILED,
    WorkflowStatus.TIMED_OUT: KeyClass.TIMED_OUT,
    WorkflowStatus.TERMINATED: KeyClass.TERMINATED,
    WorkflowStatus.CANCELED: KeyClass.CANCELED,
}


@dataclass(frozen=True)
class Execution:
    """One run as visibility lists it. ``status`` uses visibility's names (``TimedOut``)."""

    workflow_id: str
    run_id: str
    status: str
    start_time: datetime
    close_time: datetime | None = None
    workflow_type: str = ""


@dataclass(frozen=True)
class HistoryPoints:
    """The two points seed 000 looks for in a run's history, plus how the run closed.

    ``start_time`` is the ``WorkflowExecutionStarted`` event; ``close_status`` the visibility name
    of the closing event (``None`` while the run is open); the success point is the close time of
    a ``WorkflowExecutionCompleted`` event.
    """

    start_time: datetime | None
    close_status: str | None = None
    close_time: datetime | None = None

    @property
    def success_time(self) -> datetime | None:
        return self.close_time if self.close_status == WorkflowStatus.COMPLETED else None


def assign_executions(
    expected: Mapping[str, str], executions: Iterable[Execution], match: str = "exact"
) -> dict[str, list[Execution]]:
    """Group executions by the key (resource id) they belong to; ``expected`` maps key → id.

    With prefix matching, an execution goes to the key with the longest matching id, so that keys
    ``acme`` and ``acme-eu`` do not steal each other's executions.
    """
    by_id = {wid: key for key, wid in expected.items()}
    result: dict[str, list[Execution]] = {key: [] for key in expected}
    seen: set[tuple[str, str]] = set()
    by_length = sorted(by_id, key=len, reverse=True)
    for ex in executions:
        if (ex.workflow_id, ex.run_id) in seen:
            continue
        seen.add((ex.workflow_id, ex.run_id))
        owner = by_id.get(ex.workflow_id)
        if owner is None:
            for wid in by_length:
                if (match == "prefix" and ex.workflow_id.startswith(wid)) or (
                    replacement_attempt(wid, ex.workflow_id) is not None
                ):
                    owner = by_id[wid]
                    break
        if owner is not None:
            result[owner].append(ex)
    return result


class _Run(NamedTuple):
    start: datetime
    ex: Execution
    status: str
    close: datetime | None


@dataclass
class KeyReport:
    """What was found for one key in one interval, and what to do about it."""

    resource_id: str
    expected_workflow_id: str
    classification: str
    reason: str
    previous_workflow_id: str = ""
    previous_run_id: str = ""
    previous_start_time: str | None = None
    executions: list[dict] = field(default_factory=list)
    attempt: int = 0
    replacement_workflow_id: str | None = None
    exhausted: bool = False

    @property
    def is_gap(self) -> bool:
        return self.classification in GAP_CLASSES

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyReport:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def classify_key(
    resource_id: str,
    expected_id: str,
    executions: Sequence[Execution],
    points: Mapping[tuple[str, str], HistoryPoints],
    *,
    now: datetime,
    max_running: timedelta | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> KeyReport:
    """Classify one key from its executions and their history points.

    A success point anywhere means completed. Otherwise an open run means running (or running too
    long past ``max_running``). Otherwise the latest closed run's ending decides (failed, timed out,
    terminated, canceled), and no run at all is missing. History wins over visibility, which can
    lag behind. A gap gets the next replacement id, unless ``max_attempts`` replacements exist.
    """
    runs = []
    for ex in executions:
        pts = points.get((ex.workflow_id, ex.run_id))
        # History is written before visibility is indexed: once it has a close event, it wins.
        runs.append(
            _Run(
                start=(pts.start_time if pts else None) or ex.start_time,
                ex=ex,
                status=pts.close_status if pts and pts.close_status else ex.status,
                close=(pts.close_time if pts else None) or ex.close_time,
            )
        )
    runs.sort(key=lambda r: (r.start, r.ex.workflow_id, r.ex.run_id))
    report = KeyReport(
        resource_id=resource_id,
        expected_workflow_id=expected_id,
        classification=KeyClass.MISSING,
        reason=f"no execution of {expected_id} found",
        executions=[
            {
                "workflow_id": r.ex.workflow_id,
                "run_id": r.ex.run_id,
                "status": r.status,
                "start_time": iso(r.start),
                "close_time": iso(r.close),
            }
            for r in runs
        ],
    )
    succeeded = [r for r in runs if r.status == WorkflowStatus.COMPLETED]
    running = [r for r in runs if r.status == WorkflowStatus.RUNNING]
    closed = [r for r in runs if r.status in FAILURE_STATUSES]
    last = (succeeded or running or closed or [None])[-1]
    if last is not None:
        report.previous_workflow_id = last.ex.workflow_id
        report.previous_run_id = last.ex.run_id
        report.previous_start_time = iso(last.start)
    if succeeded:
        report.classification = KeyClass.COMPLETED
        report.reason = f"{last.ex.workflow_id} completed at {iso(last.close)}"
        return report
    if running:
        age = now - last.start
        if max_running is not None and age > max_running:
            report.classification = KeyClass.RUNNING_TOO_LONG
            report.reason = (
                f"{last.ex.workflow_id} has been running for {_age(age)} (limit {_age(max_running)})"
            )
        else:
            report.classification = KeyClass.RUNNING
            report.reason = f"{last.ex.workflow_id} running since {iso(last.start)}"
        return report
    if closed:
        report.classification = _CLASS_OF_STATUS[last.status]
        report.reason = (
            f"last execution {last.ex.workflow_id} ended {last.status} at {iso(last.close)} with no "
            f"success point in its history ({len(runs)} execution(s) in total)"
        )
    attempts = [replacement_attempt(expected_id, r.ex.workflow_id) or 0 for r in runs]
    report.attempt = max(attempts, default=0) + 1
    if report.attempt > max_attempts:
        report.exhausted = True
        report.reason += f"; {max_attempts} replacement(s) already tried, none started"
    else:
        report.replacement_workflow_id = replacement_workflow_id(expected_id, report.attempt)
    return report


def count_classes(reports: Iterable[KeyReport]) -> dict[str, int]:
    """Keys per class, every class present (zeros included) in report order."""
    counts = dict.fromkeys(CLASSES, 0)
    for r in reports:
        counts[r.classification] += 1
    return counts


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
