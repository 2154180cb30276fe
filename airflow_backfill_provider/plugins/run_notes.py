"""Say why a run dated before its DAG's start date ran nothing (Airflow 3.3.2).

Airflow creates no task instance for a task whose start date is after the run's logical date, except
in backfills, and every task inherits the DAG's start date. So a manual run triggered from the UI or
the REST API with a logical date before the start date has no task at all, and the scheduler marks
it "success" at once: a run that loaded nothing looks like one that loaded its window. (The CLI
refuses such a run itself when the start date is in ``default_args``, as in this provider's DAGs.)

No task of the run can report it, since none runs; so this listener does, in the scheduler: when a
run of one of this provider's DAGs succeeds with no task instance and its logical date is before the
DAG's start date, it sets the run's note (shown on the run's page in the UI) to the reason and what
to do instead, and logs it as a warning. A note someone already wrote is kept.

It also says why a run waits forever: a task whose pool does not exist (``WONDERWARE_BACKFILL_POOL``
names one that was never created) is never scheduled, and only the scheduler's log says so. When a
run of such a DAG starts, the listener notes on the run which tasks wait on which missing pool and
the command that creates it, and logs it as an error; only tasks that will run count (a run dated
before the start date has none, and gets the note above instead).

When a run ends, the listener writes what its tasks said about it (XCom ``run_note``, pushed with
:func:`..tasks.runs.note_on_run`: rows and window loaded, a skip's reason, a failure's reason), and
for a failed run the tasks that failed without saying why. A note it wrote earlier (the missing
pool's, once the pool exists) is replaced, so a note says what is true when a person reads it.
Its notes end with an invisible Markdown comment (:data:`MARK`); a note without it is a person's,
and is never overwritten.
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

# This provider's DAGs: the listener leaves every other DAG's runs alone.
DAG_IDS = frozenset({"wonderware_backfill", "wonderware_sync", "missing_workflow_backfill", "k8s_job_backfill"})
# Ends every note this listener writes: a Markdown comment (an unused link reference definition),
# invisible on the run's page, by which a later call tells its own note from a person's.
MARK = "\n\n[//]: # (airflow-backfill-provider)"


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
    """The pools that ``dag_run``'s tasks name but Airflow lacks, each with its task ids.

    Only tasks with a task instance in the run count: Airflow makes none for a task dated after the
    run, and such a task waits on nothing.
    """
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
    in_run = set(_task_states(dag_run))
    missing = {
        pool: [t for t in tasks if t in in_run] for pool, tasks in by_pool.items() if pool not in existing
    }
    return {pool: tasks for pool, tasks in missing.items() if tasks}


def _query(dag_run: DagRun, query, *, scalars: bool = False, rows: bool = False):
    """Run ``query`` in the run's own session (the scheduler's), or a new one outside it."""
    from airflow.utils.session import create_session
    from sqlalchemy.orm import object_session

    def run(session):
        if scalars:
            return list(session.scalars(query))
        return list(session.execute(query)) if rows else session.scalar(query)

    session = object_session(dag_run)
    if session is not None:
        return run(session)
    with create_session() as own:
        return run(own)


def _task_states(dag_run: DagRun) -> dict[str, list[str | None]]:
    """The state of each task instance of the run (one per map index), by task id."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    rows = _query(
        dag_run,
        select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
        ),
        rows=True,
    )
    states: dict[str, list[str | None]] = {}
    for task_id, state in rows:
        states.setdefault(task_id, []).append(getattr(state, "value", state))
    return states


def _task_notes(dag_run: DagRun) -> list[tuple[str, str]]:
    """``(task id, text)`` of every ``run_note`` the run's tasks pushed, oldest first."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from airflow_backfill_provider.tasks.runs import RUN_NOTE

    rows = _query(
        dag_run,
        select(XComModel)
        .where(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == RUN_NOTE
        )
        .order_by(XComModel.timestamp),
        scalars=True,
    )
    return [(row.task_id, str(XComModel.deserialize_value(row))) for row in rows]


def mine(note: str | None) -> bool:
    """Whether ``note`` is one this listener wrote (a person's note is never replaced)."""
    return bool(note) and note.endswith(MARK)


def _write(dag_run: DagRun, text: str | None) -> bool:
    """Set the run's note to ``text`` (``None``: remove ours) unless a person wrote it; True if set.

    The scheduler's run is bound to its session; ``dag.test()``'s is not, and is written through
    a session of its own.
    """
    from sqlalchemy.orm import object_session

    if object_session(dag_run) is not None:
        return _set_note(dag_run, text)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        bound = session.get(DagRun, dag_run.id)
        return bound is not None and _set_note(bound, text)


def _set_note(dag_run: DagRun, text: str | None) -> bool:
    if dag_run.note and not mine(dag_run.note):
        return False
    new = text + MARK if text else None
    if new != dag_run.note:
        dag_run.note = new
    return True


def note_for(dag_run: DagRun) -> str | None:
    """The note of a run that ran no task because it is dated before its DAG's start date, or None."""
    dag = getattr(dag_run, "dag", None)
    start_date = getattr(dag, "start_date", None)
    logical_date = dag_run.logical_date
    if dag is None or start_date is None or logical_date is None or logical_date >= start_date:
        return None
    if not _ours(dag_run) or _task_states(dag_run):
        return None
    return before_start_date_note(dag_run.dag_id, logical_date, start_date)


def ended_note(dag_run: DagRun, failed: bool) -> str | None:
    """What a run that ended did, from its tasks' notes; for a failed run, the tasks that failed
    without a note; the missing pools if any still lack."""
    notes = _task_notes(dag_run)
    lines = [text for _, text in notes]
    if failed:
        said = {task_id for task_id, _ in notes}
        silent = [
            f"{task_id} ({states.count('failed')} of {len(states)})" if len(states) > 1 else task_id
            for task_id, states in _task_states(dag_run).items()
            if "failed" in states and task_id not in said
        ]
        if silent:
            lines.append(f"Failed: {', '.join(silent)}. The task logs say why.")
    missing = missing_pools(dag_run)
    if missing:
        lines.append(missing_pool_note(dag_run.dag_id, missing))
    return "\n\n".join(lines) or None


def _ours(dag_run: DagRun) -> bool:
    return dag_run.dag_id in DAG_IDS


class _RunNotes:
    """The listener object: Airflow registers its ``hookimpl`` methods."""

    @hookimpl
    def on_dag_run_running(self, dag_run: DagRun, msg: str) -> None:
        if not _ours(dag_run):
            return
        missing = missing_pools(dag_run)
        if missing:
            note = missing_pool_note(dag_run.dag_id, missing)
            _write(dag_run, note)
            log.error("%s: %s", dag_run.run_id, note)

    @hookimpl
    def on_dag_run_success(self, dag_run: DagRun, msg: str) -> None:
        self._ended(dag_run, failed=False)

    @hookimpl
    def on_dag_run_failed(self, dag_run: DagRun, msg: str) -> None:
        self._ended(dag_run, failed=True)

    @staticmethod
    def _ended(dag_run: DagRun, failed: bool) -> None:
        if not _ours(dag_run):
            return
        empty = None if failed else note_for(dag_run)
        if empty:
            log.warning("%s: %s", dag_run.run_id, empty)
        _write(dag_run, empty or ended_note(dag_run, failed))


class RunNotesPlugin(AirflowPlugin):
    """Registers the listener that notes on each run what it did or why it did nothing: a run
    dated before the DAG's start date, tasks waiting on a pool that does not exist, the tasks' own
    notes (rows and window loaded, a skip's or a failure's reason)."""

    name = "backfill_run_notes"
    listeners = [_RunNotes()]
