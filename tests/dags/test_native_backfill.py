"""The headline entry point for real: `airflow backfill create` with the scheduler and the execution API.

A PostgreSQL historian whose second day cannot be read (a function in the History view raises for
it), three daily intervals: day 2 fails, days 1 and 3 land. After the source is fixed,
`--reprocess-behavior failed` re-runs exactly day 2 and every interval ends exact. The chunks run
in the pool `WONDERWARE_BACKFILL_POOL` names. Until the pool exists they wait, and the runs' notes
say why; once it exists with one slot, they run, never two at once although three runs are active.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

from airflow_backfill_provider.testing.counts import clickhouse_counts, source_days
from airflow_backfill_provider.testing.faults import faulty_historian
from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
JAN1, JAN3 = date(2025, 1, 1), date(2025, 1, 3)


def test_native_backfill_then_reprocess_failed(postgres_url, tmp_path):
    engine = faulty_historian(
        postgres_url,
        days=3,
        tags=6,
        rate=120,
        fault_sql=[
            "CREATE TABLE broken_day (day date)",
            "INSERT INTO broken_day VALUES ('2025-01-02')",
            "CREATE FUNCTION readable(ts timestamp) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM broken_day WHERE day = ts::date) THEN "
            "RAISE EXCEPTION 'bad sector under %', ts::date; END IF; RETURN true; END $$",
        ],
        predicate='readable("DateTime")',
    )

    chdb_path = tmp_path / "chdb"
    stack = AirflowStack(
        home=tmp_path / "airflow",
        dags_folder=DAGS_FOLDER,
        parallelism=3,
        extra_env={
            **wonderware_backfill_env(
                postgres_url, chdb_path, JAN1, JAN3, source_extra={"retry_attempts": 1}
            ),
            "WONDERWARE_BACKFILL_RETRIES": "0",
            "WONDERWARE_BACKFILL_POOL": "historian",
        },
    )
    stack.prepare("wonderware_backfill")
    backfill = backfill_args(
        "wonderware_backfill",
        JAN1,
        JAN3,
        max_active_runs=3,
        conf={"chunk_window": "P1D", "tag_group_size": 10},
    )
    stack.cli(*backfill)
    with stack.running():
        # The pool does not exist yet: the chunks are made and wait, and each run's note says why.
        notes = poll(
            lambda: stack.query(
                "SELECT n.content FROM dag_run r JOIN dag_run_note n ON n.dag_run_id = r.id "
                "WHERE r.dag_id = 'wonderware_backfill'"
            )
        )
        assert all("Airflow had no pool 'historian' (task fetch_insert)" in note for (note,) in notes), notes
        waiting = "SELECT state, start_date FROM task_instance WHERE task_id = 'fetch_insert'"
        poll(lambda: stack.query(f"{waiting} AND state = 'scheduled'"))  # plan made the chunks
        time.sleep(5)  # a scheduler loop is 1 s: a chunk that could start has started by now
        assert {start for _, start in stack.query(waiting)} == {None}
        assert {state for state, _ in stack.query(waiting)} <= {None, "scheduled"}
        stack.cli("pools", "set", "historian", "1", "one historian session at a time")
        runs = stack.wait_for_runs("wonderware_backfill", expected=3, timeout=420)
    states = {str(r["data_interval_start"])[:10]: r["state"] for r in runs}
    assert states == {"2025-01-01": "success", "2025-01-02": "failed", "2025-01-03": "success"}
    expected = source_days(engine, "history_data")
    landed = clickhouse_counts(chdb_path, by="day")
    assert landed == {d: n for d, n in expected.items() if d != "2025-01-02"}
    chunks = stack.query(
        "SELECT pool, start_date, end_date FROM task_instance "
        "WHERE dag_id = 'wonderware_backfill' AND task_id = 'fetch_insert' ORDER BY start_date"
    )
    assert [pool for pool, _, _ in chunks] == ["historian"] * 3
    spans = [(_instant(start), _instant(end)) for _, start, end in chunks]
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM broken_day"))
    engine.dispose()
    stack.cli(*backfill, "--reprocess-behavior", "failed")
    with stack.running():
        runs = stack.wait_for_runs("wonderware_backfill", expected=3, timeout=420, want_all_success=True)
    assert {str(r["data_interval_start"])[:10]: r["state"] for r in runs} == dict.fromkeys(states, "success")
    assert clickhouse_counts(chdb_path, by="day") == expected
    # only day 2 was run again: days 1 and 3 kept their single fetch_insert try
    tries = stack.query(
        "SELECT substr(r.data_interval_start, 1, 10), max(t.try_number) FROM task_instance t "
        "JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id "
        "WHERE t.dag_id = 'wonderware_backfill' AND t.task_id = 'fetch_insert' GROUP BY 1"
    )
    assert dict(tries) == {"2025-01-01": 1, "2025-01-02": 2, "2025-01-03": 1}


def _instant(value) -> datetime:
    """A metadata timestamp as a datetime (SQLite hands back text)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def poll(query, timeout: float = 120) -> list:
    """The first non-empty answer of ``query``, asked once a second."""
    deadline = time.monotonic() + timeout
    while not (rows := query()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout:.0f}s")
        time.sleep(1)
    return rows
