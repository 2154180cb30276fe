"""Say why a run dated before its DAG's start date ran nothing (Airflow 3.3.2).

Airflow creates no task instance for a task whose start date is after the run's logical date, except
in backfills, and every task inherits the DAG's start date. So a manual run triggered from the UI or
the REST API with a logical date before the start date has no task at all, and the scheduler marks
it "success" at once: a run that loaded nothing looks like one that loaded its window. (The CLI
refuses such a run itself when the start date is in ``default_args``, as in this provider's DAGs.)

No task of the run can report it, since none runs; so this listener does, in the scheduler: when a
run of a DAG tagged ``backfill`` succeeds with no task instance and its logical date is before the
DAG's start date, it sets the run's note (shown on the run's page in the UI) to the reason and what
to do instead, and logs it as a warning. A note someone already wrote is kept.

It also says why a run waits forever: a task whose pool does not exist (``WONDERWARE_BACKFILL_POOL``
names one that was never created) is never scheduled, and only the scheduler's log says so. When a
run of such a DAG starts, the listener notes on the run which tasks wait on which missing pool and
the command that creates it, and logs it as an error.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

log = logging.getLogger(__name__)

TAG = "backfill"


def before_start_date_note(dag_id: str, logical_date: datetime, start_date: datetime) -> str:
    """The note of a run that Airflow left empty because it is dated before the DAG's start date."""
    return (
        f"No task ran: this run's logical date {logical_date.isoformat()} is before the start date of "
        f"{dag_id} ({start_date.isoformat()}), and Airflow creates no task for a manual run dated "
        "before it. Nothing was loaded. To load that interval, run `airflow backfill create` (or the "
        "Backfill dialog) over it, which the start date does not limit, or trigger a run without a "
        "logical date and with the Params range_start/range_end."
    )


def missing_pool_note(dag_id: str, missing: dict[str, list[str]]) -> str:
    """The note of a run whose tasks sit in pools that do not exist (pool → its task ids)."""
    pools = "; ".join(
        f"'{pool}' (task {', '.join(sorted(tasks))})" for pool, tasks in sorted(missing.items())
    )
    create = " and ".join(f"`airflow pools set {pool} <slots> <description>`" for pool in sorted(missing))
    return (
        f"Tasks wait and never run: when this run of {dag_id} started, Airflow had no pool {pools}. "
        f"Create it ({create}, or Admin > Pools in the UI) and the tasks start; or unset the setting "
        "that names it (WONDERWARE_BACKFILL_POOL for wonderware_backfill) to use default_pool."
    )


def missing_pools(dag_run: DagRun) -> dict[str, list[str]]:
    """The pools that ``dag_run``'s tasks name but Airflow lacks, each with its task ids."""
    from airflow.models.pool import Pool
    from sqlalchemy import select

    by_pool: dict[str, list[str]] = {}
    for task in getattr(getattr(dag_run, "dag", None), "tasks", None) or ():
        pool = getattr(task, "pool", None)
        if pool:
            by_pool.setdefault(pool, []).append(task.task_id)
    if not by_pool:
        return {}
    existing = set(_query(dag_run, select(Pool.pool).where(Pool.pool.in_(by_pool)), scalars=True))
    return {pool: tasks for pool, tasks in by_pool.items() if pool not in existing}


def _query(dag_run: DagRun, query, *, scalars: bool = False):
    """Run ``query`` in the run's own session (the scheduler's), or a new one outside it."""
    from airflow.utils.session import create_session
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is not None:
        return list(session.scalars(query)) if scalars else session.scalar(query)
    with create_session() as own:
        return list(own.scalars(query)) if scalars else own.scalar(query)


def _task_count(dag_run: DagRun) -> int:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import func, select

    return _query(
        dag_run,
        select(func.count()).where(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        ),
    )


def note_for(dag_run: DagRun) -> str | None:
    """The note to set on ``dag_run``, or None when it ran tasks, has a note, or is not one of ours."""
    dag = getattr(dag_run, "dag", None)
    start_date = getattr(dag, "start_date", None)
    logical_date = dag_run.logical_date
    if dag is None or start_date is None or logical_date is None or logical_date >= start_date:
        return None
    if not _ours(dag_run) or dag_run.note:
        return None
    if _task_count(dag_run):
        return None
    return before_start_date_note(dag_run.dag_id, logical_date, start_date)


def _ours(dag_run: DagRun) -> bool:
    return TAG in (getattr(getattr(dag_run, "dag", None), "tags", None) or ())


class _RunNotes:
    """The listener object: Airflow registers its ``hookimpl`` methods."""

    @hookimpl
    def on_dag_run_running(self, dag_run: DagRun, msg: str) -> None:
        if not _ours(dag_run):
            return
        missing = missing_pools(dag_run)
        if missing:
            note = missing_pool_note(dag_run.dag_id, missing)
            if not dag_run.note:
                dag_run.note = note
            log.error("%s: %s", dag_run.run_id, note)

    @hookimpl
    def on_dag_run_success(self, dag_run: DagRun, msg: str) -> None:
        note = note_for(dag_run)
        if note:
            dag_run.note = note
            log.warning("%s: %s", dag_run.run_id, note)


class RunNotesPlugin(AirflowPlugin):
    """Registers the listener that explains empty runs dated before the DAG's start date, and runs
    that wait on a pool that does not exist."""

    name = "backfill_run_notes"
    listeners = [_RunNotes()]
