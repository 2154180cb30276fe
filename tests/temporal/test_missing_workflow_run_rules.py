"""`missing_workflow_backfill` by run type (issue 9), under dag.test() against the dev server and chdb.

A triggered run is a dry run unless its conf says otherwise; scheduled runs and backfills start
replacements as before unless their conf asks for a dry run; explicit intervals are for manual runs;
a run without a logical date checks the last complete interval; with no start date configured, a run
of any date runs its tasks. Scheduled and backfill runs come from ``testing.run_types.runs_of_type``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pendulum
import pytest
from temporal_support import TASK_QUEUE

from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.testing.dag_runs import run_note, task_states, xcom
from airflow_backfill_provider.testing.run_types import runs_of_type

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "missing_workflow_backfill.py"
KEYS = ["k1", "k2"]
SPEC = {
    "name": "saferules",
    "workflow_type": "TestWorkflow",
    "task_queue": TASK_QUEUE,
    "id_template": "saferules-{key}-{interval_start:%Y%m%d}",
    "keys": KEYS,
}


def day(d: int, month: int = 3, year: int = 2026) -> pendulum.DateTime:
    return pendulum.datetime(year, month, d, tz="UTC")


def replacements(yyyymmdd: str) -> list[str]:
    return [f"saferules-{k}-{yyyymmdd}-backfill-1" for k in KEYS]


@pytest.fixture
def dag(airflow_db, temporal_worker, tmp_path, monkeypatch):
    """A freshly parsed DAG (Params of an earlier run's conf must not stick) and a fresh chdb."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        json.dumps({"conn_type": "clickhouse", "extra": {"chdb_path": str(tmp_path / "chdb")}}),
    )
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["missing_workflow_backfill"]


def test_default_dag_has_no_start_date(dag):
    assert (dag.start_date, dag.catchup) == (None, False)


def test_a_triggered_run_is_a_dry_run_by_default(dag):
    dr = dag.test(logical_date=day(2), run_conf={"spec": SPEC})
    assert task_states(dr)["summary"] == "success"
    summary = xcom(dr, "summary")
    assert summary["dry_run"] is True and summary["started"] == [] and summary["recorded"] == 0
    assert sorted(summary["would_start"]) == replacements("20260301")
    assert TemporalHook().get_statuses(replacements("20260301")) == dict.fromkeys(replacements("20260301"))


def test_a_scheduled_run_starts_replacements_as_before(dag):
    with runs_of_type("scheduled", (day(3), day(4))):
        dr = dag.test(logical_date=day(3), run_conf={"spec": SPEC})
    assert dr.run_type == "scheduled" and task_states(dr)["summary"] == "success", task_states(dr)
    summary = xcom(dr, "summary")
    assert summary["dry_run"] is False and sorted(summary["started"]) == replacements("20260303")
    assert summary["recorded"] == 2


def test_a_backfill_asked_for_a_dry_run_starts_nothing(dag):
    with runs_of_type("backfill", (day(5), day(6))):
        dr = dag.test(logical_date=day(5), run_conf={"spec": SPEC, "dry_run": True})
    summary = xcom(dr, "summary")
    assert summary["dry_run"] is True and sorted(summary["would_start"]) == replacements("20260305")
    assert TemporalHook().get_statuses(replacements("20260305")) == dict.fromkeys(replacements("20260305"))


def test_an_explicit_interval_in_a_backfill_run_fails_at_once(dag, capfd):
    conf = {"spec": SPEC, "interval_start": "2026-03-01T00:00:00Z", "interval_end": "2026-03-02T00:00:00Z"}
    with runs_of_type("backfill", (day(7), day(8))):
        dr = dag.test(logical_date=day(7), run_conf=conf)
    states = task_states(dr)
    assert (states["resolve_spec"], states["find_gaps"], states["backfill"]) == (
        "failed",
        "upstream_failed",
        "upstream_failed",
    )
    assert [ti.try_number for ti in dr.get_task_instances() if ti.task_id == "resolve_spec"] == [1]
    assert dr.state == "failed" and states["summary"] == "failed", states  # not a green run
    assert run_note(dr).startswith(
        "resolve_spec failed: interval_start and interval_end are for manual runs only"
    )
    out = capfd.readouterr()
    assert (
        "interval_start and interval_end are for manual runs only, but this is a backfill run"
        in out.out + out.err
    )


def test_a_run_without_a_logical_date_checks_the_last_complete_interval(dag):
    dr = dag.test(logical_date=None, run_after=day(10).add(hours=5), run_conf={"spec": SPEC})
    assert dr.data_interval_start is None
    (found,) = xcom(dr, "find_gaps")
    assert (found["interval_start"], found["interval_end"]) == (
        "2026-03-09T00:00:00+00:00",
        "2026-03-10T00:00:00+00:00",
    )
    assert xcom(dr, "summary")["dry_run"] is True


def test_a_run_of_a_date_before_the_former_default_start_date_runs(dag):
    """The former default start date (2026-01-01) made such a run end "success" with no task run."""
    dr = dag.test(logical_date=day(2, month=6, year=2025), run_conf={"spec": SPEC})
    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    (found,) = xcom(dr, "find_gaps")
    assert found["interval_start"] == "2025-06-01T00:00:00+00:00" and found["counts"]["missing"] == 2


def test_a_scheduled_run_with_no_spec_configured_skips_and_says_why(dag, monkeypatch):
    """Unpausing with the default settings (no spec anywhere) made a red run every day (issue 17,
    item 10): a scheduled run skips, the run is green, and its note says why and what to set."""
    monkeypatch.delenv("AIRFLOW_VAR_MISSING_WORKFLOW_BACKFILL_SPEC", raising=False)
    with runs_of_type("scheduled", (day(12), day(13))):
        dr = dag.test(logical_date=day(12), run_conf={"spec": None, "spec_file": None})
    states = task_states(dr)
    assert dr.state == "success", states
    assert {states[t] for t in ("resolve_spec", "find_gaps", "backfill", "summary")} == {"skipped"}, states
    assert run_note(dr).startswith(
        "This scheduled run of [2026-03-12T00:00:00+00:00, 2026-03-13T00:00:00+00:00) checks nothing: "
        "No workflow spec: pass the 'spec' or 'spec_file' Param, set the Variable "
        "'missing_workflow_backfill_spec'"
    )
