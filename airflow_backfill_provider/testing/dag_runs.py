"""In-process DAG runs for tests: register a DAG defined in a test module, read back its outcome.

``dag.test()`` finds a DAG's serialized version through the bundles it syncs, so a DAG built inside
a test has to be serialized into the metadata database first (``register_dag``).
"""

from __future__ import annotations

import os
from typing import Any


def register_dag(dag: Any) -> None:
    """Serialize a DAG defined in a test module, which dag.test() needs and cannot find itself."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """The XCom a task of ``dag_run`` pushed under ``key``, or ``None``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id: state}`` of every task instance of ``dag_run``."""
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def reschedule_count(dag_run: Any, task_id: str) -> int:
    """How many times a sensor of ``dag_run`` was rescheduled (rows in ``task_reschedule``)."""
    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(TaskReschedule)
            .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
            .where(
                TaskInstance.dag_id == dag_run.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.task_id == task_id,
            )
        )


def run_note(dag_run: Any) -> str | None:
    """The note on ``dag_run``'s page as it is now in the metadata database (``None``: no note)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagRun, dag_run.id).note
