"""The headline entry point for real: `airflow backfill create` with the scheduler and the execution API.

A PostgreSQL historian whose second day cannot be read (a function in the History view raises for
it), three daily intervals: day 2 fails, days 1 and 3 land. After the source is fixed,
`--reprocess-behavior failed` re-runs exactly day 2 and every interval ends exact.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sqlalchemy as sa
from conftest import faulty_historian

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


def day_counts(engine, table: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT to_char(\"DateTime\", 'YYYY-MM-DD'), count(*) FROM {table} "
                "WHERE \"TagName\" NOT LIKE 'Sys%' GROUP BY 1"
            )
        ).all()
    return dict(rows)


def clickhouse_days(chdb_path) -> dict[str, int]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    try:
        if not client.command("EXISTS TABLE WonderwareHistory"):
            return {}
        rows = client.query("SELECT toString(toDate(DateTime)), count() FROM WonderwareHistory GROUP BY 1")
        return dict(rows.result_rows)
    finally:
        client.close()


def test_native_backfill_then_reprocess_failed(postgres_url, tmp_path):
    from native_backfill import AirflowStack

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
        parallelism=3,
        extra_env={
            "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(
                {"conn_type": "wonderware", "extra": {"sqlalchemy_url": postgres_url, "retry_attempts": 1}}
            ),
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps(
                {"conn_type": "clickhouse", "extra": {"chdb_path": str(chdb_path)}}
            ),
            "WONDERWARE_BACKFILL_START_DATE": "2025-01-01",
            "WONDERWARE_BACKFILL_END_DATE": "2025-01-03",
            "WONDERWARE_BACKFILL_CATCHUP": "false",
            "WONDERWARE_BACKFILL_RETRIES": "0",
        },
    )
    stack.prepare("wonderware_backfill")
    backfill = ["backfill", "create", "--dag-id", "wonderware_backfill", "--from-date", "2025-01-01",
                "--to-date", "2025-01-03", "--max-active-runs", "3",
                "--dag-run-conf", json.dumps({"chunk_window": "1d", "tag_group_size": 10})]  # fmt: skip
    stack.cli(*backfill)
    with stack.running():
        runs = stack.wait_for_runs("wonderware_backfill", expected=3, timeout=420)
    states = {str(r["data_interval_start"])[:10]: r["state"] for r in runs}
    assert states == {"2025-01-01": "success", "2025-01-02": "failed", "2025-01-03": "success"}
    expected = day_counts(engine, "history_data")
    landed = clickhouse_days(chdb_path)
    assert landed == {d: n for d, n in expected.items() if d != "2025-01-02"}

    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM broken_day"))
    engine.dispose()
    stack.cli(*backfill, "--reprocess-behavior", "failed")
    with stack.running():
        runs = stack.wait_for_runs("wonderware_backfill", expected=3, timeout=420, want_all_success=True)
    assert {str(r["data_interval_start"])[:10]: r["state"] for r in runs} == dict.fromkeys(states, "success")
    assert clickhouse_days(chdb_path) == expected
    # only day 2 was run again: days 1 and 3 kept their single fetch_insert try
    tries = stack.query(
        "SELECT substr(r.data_interval_start, 1, 10), max(t.try_number) FROM task_instance t "
        "JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id "
        "WHERE t.dag_id = 'wonderware_backfill' AND t.task_id = 'fetch_insert' GROUP BY 1"
    )
    assert dict(tries) == {"2025-01-01": 1, "2025-01-02": 2, "2025-01-03": 1}
