"""The run-notes listener, called by Airflow's own listener manager on runs of the real DAG.

The DAG is parsed from dags/ and serialized into a real metadata database, as the dag processor
does; each run is created from the serialized DAG as the scheduler creates it (with its task
instances), and told it started or ended through ``DagRun.notify_dagrun_state_changed``, the call
the scheduler makes. (The scheduler end to end, for the start-date note, is in
tests/dags/test_safe_defaults_airflow.py; runs under ``dag.test()`` in the DAG tests.)
"""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.plugins.run_notes import MARK, before_start_date_note, missing_pool_note
from airflow_backfill_provider.tasks.runs import RUN_NOTE

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
_DAYS = itertools.count(1)  # one logical date per run: Airflow keeps them unique per DAG


def day_after(base: datetime) -> datetime:
    return base + timedelta(days=next(_DAYS))


def stored_run(monkeypatch, session, pool: str | None, *, logical_date=None, note: str | None = None):
    """A running run of wonderware_backfill (start date START), built with WONDERWARE_BACKFILL_POOL=pool."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    logical_date = logical_date or day_after(START)
    monkeypatch.setenv("WONDERWARE_BACKFILL_START_DATE", START.date().isoformat())
    if pool is None:
        monkeypatch.delenv("WONDERWARE_BACKFILL_POOL", raising=False)
    else:
        monkeypatch.setenv("WONDERWARE_BACKFILL_POOL", pool)
    # Each run's DAG is parsed with its own settings: store every version, not one per 30 s.
    monkeypatch.setenv("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0")
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "wonderware_backfill.py"))
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)
    dag = SerializedDagModel.get_dag("wonderware_backfill", session=session)
    run = dag.create_dagrun(
        run_id=f"manual__{uuid.uuid4().hex[:8]}",
        logical_date=logical_date,
        data_interval=(logical_date, logical_date),
        run_after=logical_date,
        conf={},
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        triggered_by=DagRunTriggeredByType.TEST,
        triggering_user_name=None,
        session=session,
    )
    if note is not None:
        run.note = note
    session.flush()
    run.dag = dag
    run.notify_dagrun_state_changed(msg="started")
    return run


def ended(run, state: str, session) -> str | None:
    run.state = state
    session.flush()
    run.notify_dagrun_state_changed(msg=state)
    return run.note


def task_says(run, session, task_id: str, text: str) -> None:
    """What ``note_on_run`` does within a task: an XCom ``run_note`` of that task instance."""
    from airflow.models.xcom import XComModel

    XComModel.set(
        key=RUN_NOTE, value=text, dag_id=run.dag_id, task_id=task_id, run_id=run.run_id, session=session
    )


@pytest.fixture
def session(airflow_db):
    from airflow.utils.session import create_session

    with create_session() as s:
        yield s


@pytest.fixture
def pool_name() -> str:
    return f"historian_{uuid.uuid4().hex[:8]}"


def test_a_run_whose_chunks_sit_in_a_missing_pool_says_so_and_how_to_fix_it(monkeypatch, session, pool_name):
    run = stored_run(monkeypatch, session, pool_name)
    assert run.note == missing_pool_note("wonderware_backfill", {pool_name: ["fetch_insert"]}) + MARK
    assert run.note.startswith(
        "Tasks wait and never run: when this run of wonderware_backfill started, Airflow had no pool "
        f"'{pool_name}' (task fetch_insert). Create it (`airflow pools set {pool_name} <slots> "
        "<description>`, or Admin > Pools in the UI) and the tasks start; or unset the setting that "
        "names it (WONDERWARE_BACKFILL_POOL for wonderware_backfill) to use default_pool."
    )


def test_the_pool_note_gives_way_to_what_the_run_did_once_the_pool_exists(monkeypatch, session, pool_name):
    """Issue 17, item 11: a note must say what is true when a person reads it."""
    from airflow.models.pool import Pool

    run = stored_run(monkeypatch, session, pool_name)
    assert run.note.startswith("Tasks wait and never run")
    Pool.create_or_update_pool(
        pool_name, slots=2, description="historian sessions", include_deferred=False, session=session
    )
    task_says(run, session, "finalize", "Loaded 120 rows of 3 tags over [2025-12-31, 2026-01-01).")
    assert ended(run, "success", session) == "Loaded 120 rows of 3 tags over [2025-12-31, 2026-01-01)." + MARK


def test_a_run_before_the_start_date_gets_the_start_date_note_not_the_pool_note(
    monkeypatch, session, pool_name
):
    """No task of such a run exists, so none waits on the missing pool (issue 17, item 11)."""
    early = day_after(datetime(2025, 6, 1, tzinfo=timezone.utc))
    run = stored_run(monkeypatch, session, pool_name, logical_date=early)
    assert run.get_task_instances(session=session) == [] and run.note is None
    assert (
        ended(run, "success", session) == before_start_date_note("wonderware_backfill", early, START) + MARK
    )


def test_a_failed_run_names_its_failed_tasks_and_what_they_said(monkeypatch, session):
    from airflow.utils.state import TaskInstanceState

    run = stored_run(monkeypatch, session, None)
    tis = {ti.task_id: ti for ti in run.get_task_instances(session=session)}
    tis["plan"].state = TaskInstanceState.FAILED
    tis["fetch_insert"].state = TaskInstanceState.UPSTREAM_FAILED
    tis["finalize"].state = TaskInstanceState.FAILED
    task_says(
        run, session, "plan", "plan failed: The Airflow connection 'wonderware_default' is not defined."
    )
    session.flush()
    # plan said why; finalize failed without a word, so the note names it (upstream_failed is not news)
    assert ended(run, "failed", session) == (
        "plan failed: The Airflow connection 'wonderware_default' is not defined.\n\n"
        "Failed: finalize. The task logs say why." + MARK
    )


def test_no_note_once_the_pool_exists_or_without_a_pool(monkeypatch, session, pool_name):
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(pool_name, slots=2, description="historian sessions", include_deferred=False)
    assert stored_run(monkeypatch, session, pool_name).note is None
    run = stored_run(monkeypatch, session, None)  # default_pool always exists
    assert run.note is None and ended(run, "success", session) is None


def test_a_note_someone_wrote_is_kept(monkeypatch, session, pool_name):
    run = stored_run(monkeypatch, session, pool_name, note="loading Line 3 only")
    assert run.note == "loading Line 3 only"
    task_says(run, session, "finalize", "Loaded 5 rows.")
    assert ended(run, "success", session) == "loading Line 3 only"


def test_a_dag_of_ones_own_is_left_alone(monkeypatch):
    """Only this provider's DAGs get notes: a user's DAG tagged ``backfill`` keeps its own."""
    from types import SimpleNamespace

    from airflow_backfill_provider.plugins import run_notes

    def untouched(*_a, **_k):
        raise AssertionError("the listener looked at a DAG that is not the provider's")

    monkeypatch.setattr(run_notes, "_write", untouched)
    monkeypatch.setattr(run_notes, "missing_pools", untouched)
    mine = SimpleNamespace(dag_id="plant_rollups", dag=SimpleNamespace(tags=["backfill", "sync"]), note=None)
    listener = run_notes._RunNotes()
    listener.on_dag_run_running(dag_run=mine, msg="started")
    listener.on_dag_run_success(dag_run=mine, msg="success")
    listener.on_dag_run_failed(dag_run=mine, msg="failed")
    assert mine.note is None
