"""What kind of run a task is in, and the rules both DAGs apply by run type.

* Explicit-window Params (``range_*``, ``interval_*``) are for runs a person (or another DAG)
  triggers: a scheduled or backfill run covers its own data interval, and the same window in every
  run of a backfill would load one window over and over.
* A run triggered without a logical date has no data interval; it covers the last complete
  interval before it was triggered, as one triggered with that logical date would.
* A default that protects a triggered run (``dry_run`` of ``missing_workflow_backfill``) does not
  change what scheduled runs and backfills do: only their own conf can.
* What a run did, or why it did nothing, goes on the run's page: a task says it with
  :func:`note_on_run` and the run-notes listener (:mod:`..plugins.run_notes`) writes the note when
  the run ends. A skip says why (:func:`skip_run`), and a task that stands in for an upstream one
  (:func:`upstream_result`) skips only when that one skipped, and fails when it failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.settings.schedule import last_complete_interval
from airflow_backfill_provider.utils import as_bool, iso

log = logging.getLogger("airflow.task")

# XCom key of what a task wants on its run's page (a line of Markdown; see plugins/run_notes.py).
RUN_NOTE = "run_note"
MANUAL = "manual"
SCHEDULED = "scheduled"
BACKFILL = "backfill"
# Runs somebody asked for with a conf of their choosing: from the UI, the CLI, the REST API or
# another DAG's TriggerDagRunOperator.
TRIGGERED = frozenset({MANUAL, "operator_triggered"})


@dataclass(frozen=True)
class RunInfo:
    """The facts of a DAG run that the run-type rules need, as plain values."""

    run_type: str
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_after: datetime | None = None
    schedule: str | None = None
    conf: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, dag_run: Any, schedule: str | None = None) -> RunInfo:
        """From Airflow's ``dag_run`` (task context) and the DAG's cron ``schedule``."""
        run_type = dag_run.run_type
        return cls(
            run_type=str(getattr(run_type, "value", run_type)),
            data_interval_start=dag_run.data_interval_start,
            data_interval_end=dag_run.data_interval_end,
            run_after=getattr(dag_run, "run_after", None),
            schedule=schedule,
            conf=dict(dag_run.conf or {}),
        )

    @property
    def triggered(self) -> bool:
        """A run somebody triggered (manual, or by another DAG), not one the scheduler made."""
        return self.run_type in TRIGGERED

    def default_interval(self) -> tuple[datetime, datetime] | None:
        """The interval of a run without one: the last complete one before it was triggered."""
        if self.data_interval_start is not None and self.data_interval_end is not None:
            return None
        if self.run_after is None or self.schedule is None:
            return None
        return last_complete_interval(self.schedule, self.run_after)

    def interval(self) -> tuple[datetime | None, datetime | None]:
        """The run's data interval, or the one :meth:`default_interval` gives it."""
        return self.default_interval() or (self.data_interval_start, self.data_interval_end)

    def describe(self) -> str:
        start, end = self.interval()
        return f"{self.run_type} run of [{iso(start)}, {iso(end)})"


def require_triggered(params: Mapping[str, Any], names: Sequence[str], run: RunInfo) -> None:
    """Refuse explicit-window Params in a scheduled or backfill run, naming them and what to do."""
    given = [n for n in names if params.get(n)]
    if not given or run.triggered:
        return
    raise ConfigurationError(
        f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for manual runs only, but this is a "
        f"{run.describe()}: scheduled and backfill runs each cover their own data interval, and one "
        "window in every run of a backfill would load that window again and again. Leave "
        f"{' and '.join(given)} empty in the Backfill dialog (or drop them from --dag-run-conf); to load "
        "one explicit window, trigger a manual run with them."
    )


def dry_run(run: RunInfo, param_value: Any) -> bool:
    """The dry-run flag of a run whose ``dry_run`` Param defaults to on for triggered runs only.

    A triggered run takes the Param (its default, or the form's or conf's value); a scheduled or
    backfill run is real unless its own conf sets ``dry_run``.
    """
    if run.triggered:
        return as_bool(param_value, "dry_run")
    return as_bool(run.conf["dry_run"], "dry_run") if "dry_run" in run.conf else False


def note_on_run(text: str, ti: Any = None) -> None:
    """Put ``text`` on the run's page when the run ends (the run note; a person's own note is kept).

    Within a task ``ti`` defaults to the running task instance; outside one (a plain function call in
    a unit test) there is no run to note and nothing happens.
    """
    if ti is None:
        from airflow.sdk import get_current_context

        try:
            ti = get_current_context()["ti"]
        except Exception:  # no task is running: nothing to note on
            return
    ti.xcom_push(key=RUN_NOTE, value=text)


def note_failure(message: str) -> None:
    """Say on the run's page which task failed and why (``message``), within a task."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task is running: nothing to note on
        return
    where = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    note_on_run(f"{where} failed: {message}", ti)


def skip_run(reason: str) -> NoReturn:
    """Skip the task, saying why in its log and on the run's page: a skip is easy to overlook."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.warning("%s", reason)
    note_on_run(reason)
    raise AirflowSkipException(reason)


def upstream_result(ti: Any, task_id: str, value: Any, *, then: str) -> Any:
    """``value`` (what ``task_id`` returned), or the end this task must take when there is none.

    A task that runs whatever its upstream did (trigger rule ``all_done``) must not hide that
    upstream's failure behind a skip: Airflow marks a run whose leaves skipped "success". So when
    ``task_id`` left no result, this task skips if ``task_id`` skipped (it said why) and fails if it
    failed or never ran. ``then`` says what this task would have done, for the message.
    """
    if value is not None:
        return value
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id])
    state = (states.get(ti.run_id) or {}).get(task_id)
    if state == "skipped":
        raise AirflowSkipException(f"{task_id} was skipped (its log says why): nothing to {then}.")
    raise AirflowFailException(
        f"{task_id} {state or 'did not run'}, so there is nothing to {then}: see the log of {task_id} "
        "for why, fix that, and clear the run."
    )
