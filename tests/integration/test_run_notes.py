"""The run-notes listener, called by Airflow's own listener manager on a run of the real DAG.

The DAG is serialized as the scheduler holds it, and the run is told it started through
``DagRun.notify_dagrun_state_changed``, the call the scheduler makes; the pools are looked up in a
real metadata database. (The scheduler end to end, for the other note, is in
tests/dags/test_safe_defaults_airflow.py.)
"""

from __future__ import annotations

import os
import uuid

import pytest

from airflow_backfill_provider.plugins.run_notes import missing_pool_note


def started_run(monkeypatch, pool: str | None, note: str | None = None):
    """A run of wonderware_backfill, built with ``WONDERWARE_BACKFILL_POOL=pool``, that has just started."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState

    if pool is None:
        monkeypatch.delenv("WONDERWARE_BACKFILL_POOL", raising=False)
    else:
        monkeypatch.setenv("WONDERWARE_BACKFILL_POOL", pool)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.get_dag("wonderware_backfill")))
    run = DagRun(
        dag_id=dag.dag_id,
        run_id=f"manual__{uuid.uuid4().hex[:8]}",
        run_type="manual",
        state=DagRunState.RUNNING,
    )
    run.dag, run.note = dag, note
    run.notify_dagrun_state_changed(msg="started")
    return run


@pytest.fixture
def pool_name() -> str:
    return f"historian_{uuid.uuid4().hex[:8]}"


def test_a_run_whose_chunks_sit_in_a_missing_pool_says_so_and_how_to_fix_it(
    airflow_db, monkeypatch, pool_name
):
    run = started_run(monkeypatch, pool_name)
    assert run.note == missing_pool_note("wonderware_backfill", {pool_name: ["fetch_insert"]})
    assert run.note == (
        "Tasks wait and never run: when this run of wonderware_backfill started, Airflow had no pool "
        f"'{pool_name}' (task fetch_insert). Create it (`airflow pools set {pool_name} <slots> "
        "<description>`, or Admin > Pools in the UI) and the tasks start; or unset the setting that "
        "names it (WONDERWARE_BACKFILL_POOL for wonderware_backfill) to use default_pool."
    )


def test_no_note_once_the_pool_exists_or_without_a_pool(airflow_db, monkeypatch, pool_name):
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(pool_name, slots=2, description="historian sessions", include_deferred=False)
    assert started_run(monkeypatch, pool_name).note is None
    assert started_run(monkeypatch, None).note is None  # default_pool always exists


def test_a_note_someone_wrote_is_kept(airflow_db, monkeypatch, pool_name):
    assert started_run(monkeypatch, pool_name, note="loading Line 3 only").note == "loading Line 3 only"
