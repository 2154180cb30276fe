"""`wonderware_backfill` by run type, under dag.test() with real parts (PostgreSQL historian, chdb).

Safe defaults (issue 9): without WONDERWARE_BACKFILL_START_DATE a scheduled run loads nothing and
says why; explicit-range Params fail at once in scheduled and backfill runs; a manual dry run
reports the rows it would load; a run triggered without a logical date loads the last complete
interval; a selection that matches no tag fails naming the patterns. Scheduled and backfill runs
come from ``testing.run_types.runs_of_type`` (``dag.test()`` itself only makes manual runs).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pendulum
import pytest

from airflow_backfill_provider.testing.counts import clickhouse_counts
from airflow_backfill_provider.testing.run_types import runs_of_type

UTC = timezone.utc
JAN1, JAN2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
DAY1 = (JAN1, JAN2)
RANGE = {"range_start": "2025-01-01T06:00:00Z", "range_end": "2025-01-01T12:00:00Z"}


def fresh_dag(dagbag, monkeypatch, **settings: str):
    """The DAG parsed now, under these WONDERWARE_BACKFILL_* settings (read at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in settings.items():
        monkeypatch.setenv(f"WONDERWARE_BACKFILL_{name}", value)
    bag = DagBag(dag_folder=dagbag.dag_folder)
    assert bag.import_errors == {}
    return bag.get_dag("wonderware_backfill")


def states(dr) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ti in dr.get_task_instances():
        out.setdefault(ti.task_id, []).append(ti.state)
    return out


def tries(dr, task_id: str) -> list[int]:
    return [ti.try_number for ti in dr.get_task_instances() if ti.task_id == task_id]


def test_default_dag_has_no_catchup_and_no_start_date(dagbag, monkeypatch):
    dag = fresh_dag(dagbag, monkeypatch)
    assert (dag.start_date, dag.catchup) == (None, False)
    assert "start_date" not in dag.default_args
    configured = fresh_dag(dagbag, monkeypatch, START_DATE="2025-01-01")
    assert (configured.start_date, configured.catchup) == (JAN1, True)
    # `airflow dags trigger --logical-date` before it is refused, instead of a run with no task
    assert configured.default_args["start_date"] == JAN1


def test_scheduled_run_without_a_start_date_loads_nothing_and_says_why(
    dagbag, monkeypatch, connections, historian_server, chdb_path, caplog
):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    caplog.set_level(logging.INFO, logger="airflow.task")
    with runs_of_type("scheduled", DAY1):
        dr = fresh_dag(dagbag, monkeypatch).test(logical_date=pendulum.instance(JAN1))
    assert dr.run_type == "scheduled" and (dr.data_interval_start, dr.data_interval_end) == DAY1
    assert states(dr) == dict.fromkeys(["plan", "fetch_insert", "finalize"], ["skipped"])
    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Scheduled loads are off")]
    assert (
        reasons
        and "this scheduled run of [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00)" in reasons[0]
    )
    assert "airflow backfill create --dag-id wonderware_backfill" in reasons[0]
    assert clickhouse_counts(chdb_path) == {}


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_explicit_range_in_a_scheduled_or_backfill_run_fails_at_once(
    dagbag, monkeypatch, connections, historian_server, chdb_path, capfd, run_type
):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dag = fresh_dag(dagbag, monkeypatch, START_DATE="2025-01-01", CATCHUP="false")
    with runs_of_type(run_type, DAY1):
        dr = dag.test(logical_date=pendulum.instance(JAN1), run_conf=RANGE)
    assert dr.state == "failed"
    assert states(dr) == {
        "plan": ["failed"], "fetch_insert": ["upstream_failed"],
        "finalize": ["upstream_failed"],
    }  # fmt: skip
    assert tries(dr, "plan") == [1]  # no retry: a wrong Param stays wrong
    out = capfd.readouterr()
    assert (
        f"range_start and range_end are for manual runs only, but this is a {run_type} run"
        in out.out + out.err
    )
    assert clickhouse_counts(chdb_path) == {}


def test_manual_dry_run_reports_the_rows_it_would_load(
    dagbag, monkeypatch, connections, historian_server, chdb_path, caplog
):
    from test_wonderware_backfill import source_counts

    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    caplog.set_level(logging.INFO, logger="airflow.task")
    dr = fresh_dag(dagbag, monkeypatch).test(
        logical_date=pendulum.instance(JAN2), run_conf={"dry_run": True, "tag_group_size": 8, **RANGE}
    )
    assert dr.state == "success", states(dr)
    assert states(dr)["finalize"] == ["skipped"]
    would = sum(
        source_counts(url, datetime(2025, 1, 1, 6, tzinfo=UTC), datetime(2025, 1, 1, 12, tzinfo=UTC)).values()
    )
    assert would > 0
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Backfill DRY RUN")]
    assert f"would load {would} rows, wrote nothing" in summary
    assert clickhouse_counts(chdb_path) == {}


def test_run_without_a_logical_date_loads_the_last_complete_interval(
    dagbag, monkeypatch, connections, historian_server, chdb_path
):
    """`airflow dags trigger wonderware_backfill` with nothing else: no data interval, run_after = now."""
    from test_wonderware_backfill import source_counts

    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dr = fresh_dag(dagbag, monkeypatch).test(
        logical_date=None,
        run_after=pendulum.datetime(2025, 1, 2, 7, 30, tz="UTC"),
        run_conf={"chunk_window": "PT12H"},
    )
    assert dr.logical_date is None and dr.data_interval_start is None
    assert dr.state == "success", states(dr)
    assert clickhouse_counts(chdb_path) == source_counts(url, JAN1, JAN2)


def test_a_selection_that_matches_no_tag_fails_naming_the_pattern(
    dagbag, monkeypatch, connections, historian_server, chdb_path, capfd
):
    url, _ = historian_server
    connections(source_url=url, chdb_path=chdb_path)
    dag = fresh_dag(dagbag, monkeypatch)
    dr = dag.test(logical_date=pendulum.instance(JAN2), run_conf={"tag_include": ["100%_Done [Line-1]"]})
    assert dr.state == "failed" and states(dr)["plan"] == ["failed"] and tries(dr, "plan") == [1]
    out = capfd.readouterr()
    assert "tag_include ['100%_Done [Line-1]'] keeps none of them" in out.out + out.err
    assert "write '100%_Done [[]Line-1]' to match that name exactly" in out.out + out.err
    # the escaped pattern loads exactly that tag
    dr = fresh_dag(dagbag, monkeypatch).test(
        logical_date=pendulum.instance(JAN2),
        run_conf={"tag_include": ["100%_Done [[]Line-1]"], "chunk_window": "P1D"},
    )
    assert dr.state == "success", states(dr)
    assert list(clickhouse_counts(chdb_path)) == ["100%_Done [Line-1]"]
