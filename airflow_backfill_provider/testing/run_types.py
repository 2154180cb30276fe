"""``dag.test()`` runs of any run type: scheduled and backfill runs in-process, for the run-type rules.

``dag.test()`` always creates a manual run (``airflow.models.dagrun.get_or_create_dagrun`` hard-codes
it). Inside :func:`runs_of_type`, the same call creates the run with the given run type and data
interval instead; everything else (task execution, XCom, states) is Airflow's own. A scheduled or
backfill run with logical date ``X`` of a daily DAG covers ``[X, X + 1 day)``: pass that interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any


@contextmanager
def runs_of_type(run_type: str, data_interval: tuple[datetime, datetime] | None) -> Iterator[None]:
    """Make the ``dag.test()`` calls in this block create runs of ``run_type`` over ``data_interval``.

    :param run_type: a ``DagRunType`` value: ``scheduled``, ``backfill``, ``manual``, ...
    :param data_interval: the run's data interval (``None``: none, as a run without a logical date)
    """
    import airflow.models.dagrun as dagrun_module
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    kind = DagRunType(run_type)
    original = dagrun_module.get_or_create_dagrun

    def create(*, dag: Any, logical_date: datetime | None, session: Any, **kw: Any) -> Any:
        DagRun = dagrun_module.DagRun
        existing = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date)
        )
        if existing:
            session.delete(existing)
            session.commit()
        return dag.create_dagrun(
            run_id=DagRun.generate_run_id(
                run_type=kind, logical_date=logical_date, run_after=kw["run_after"]
            ),
            logical_date=logical_date,
            data_interval=data_interval,
            run_after=kw["run_after"],
            conf=kw["conf"],
            run_type=kind,
            state=DagRunState.RUNNING,
            triggered_by=kw["triggered_by"],
            triggering_user_name=kw["triggering_user_name"],
            start_date=kw["start_date"] or logical_date,
            session=session,
        )

    dagrun_module.get_or_create_dagrun = create
    try:
        yield
    finally:
        dagrun_module.get_or_create_dagrun = original
