"""`make demo`: a real Airflow native backfill of a simulated historian into embedded ClickHouse.

1. simulates DAYS days of TAGS tags (analog, discrete, string, Sys*, hostile names) into SQLite;
2. runs ``airflow backfill create --dag-id wonderware_backfill`` with the scheduler and the task
   execution API, LocalExecutor with parallel task processes, into embedded ClickHouse (chdb);
3. prints source rows vs ClickHouse rows per interval; the last line is one JSON object.

Exits non-zero on any mismatch or failed run, and leaves no process running. Everything lives in
``.demo/`` (recreated on each run).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from native_backfill import ROOT, AirflowStack  # noqa: E402

DEMO = ROOT / ".demo"
START = datetime(2025, 1, 1)
DAYS = 3
TAGS = 36
DAG_ID = "wonderware_backfill"


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


def source_rows(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                'SELECT substr("DateTime", 1, 10), count(*) FROM "History" '
                "WHERE \"TagName\" NOT LIKE 'Sys%' GROUP BY 1"
            )
        ).all()
    engine.dispose()
    return {day: n for day, n in rows}


def clickhouse_rows(chdb_path: Path) -> dict[str, int]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    try:
        if not client.command("EXISTS TABLE WonderwareHistory"):
            return {}
        rows = client.query("SELECT toString(toDate(DateTime)), count() FROM WonderwareHistory GROUP BY 1")
        return {day: n for day, n in rows.result_rows}
    finally:
        client.close()


def main() -> int:
    began = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    historian_url = f"sqlite:///{DEMO / 'historian.db'}"
    chdb_path = DEMO / "clickhouse"

    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    sim = simulate(
        historian_url,
        SimulatorConfig(
            start=START,
            end=START + timedelta(days=DAYS),
            tags=TAGS,
            rate=30,
            seed=2025,
            boundary_every=timedelta(days=1),
            hostile_tags=True,
        ),
        replace=True,
    )
    say(
        f"Simulated {sim.total_rows:,} History rows of {sum(sim.tags.values())} tags {sim.tags} in {sim.seconds:.1f}s"
    )

    last_day = (START + timedelta(days=DAYS - 1)).date().isoformat()
    stack = AirflowStack(
        home=DEMO / "airflow",
        parallelism=4,
        extra_env={
            "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(
                {"conn_type": "wonderware", "extra": {"sqlalchemy_url": historian_url}}
            ),
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps(
                {"conn_type": "clickhouse", "extra": {"chdb_path": str(chdb_path)}}
            ),
            "WONDERWARE_BACKFILL_START_DATE": START.date().isoformat(),
            "WONDERWARE_BACKFILL_END_DATE": last_day,
            # The backfill below creates the runs; catchup would only race it for the same intervals.
            "WONDERWARE_BACKFILL_CATCHUP": "false",
        },
    )
    say("Preparing Airflow (metadata DB, DAG serialization) …")
    stack.prepare(DAG_ID)
    backfill = [
        "backfill", "create", "--dag-id", DAG_ID,
        "--from-date", START.date().isoformat(), "--to-date", last_day,
        "--max-active-runs", "2",
        "--dag-run-conf", json.dumps({"tag_group_size": 10, "chunk_window": "12h"}),
    ]  # fmt: skip
    say("$ airflow " + " ".join(backfill))
    stack.cli(*backfill)
    with stack.running():
        say(f"Scheduler and execution API up (parallelism {stack.parallelism}); waiting for {DAYS} runs …")
        runs = stack.wait_for_runs(DAG_ID, expected=DAYS, timeout=480)
    chunk_seconds = sum(stack.task_durations(DAG_ID, "fetch_insert"))

    src, dst = source_rows(historian_url), clickhouse_rows(chdb_path)
    say("")
    say(f"{'interval':<25} {'run state':<10} {'source rows':>12} {'clickhouse rows':>16}  match")
    mismatched = []
    for run in runs:
        day = str(run["data_interval_start"])[:10]
        s, d = src.get(day, 0), dst.get(day, 0)
        ok = s == d and run["state"] == "success"
        if not ok:
            mismatched.append(day)
        say(
            f"{day + ' → ' + str(run['data_interval_end'])[:10]:<25} {run['state']:<10} {s:>12,} {d:>16,}  {'yes' if ok else 'NO'}"
        )
    summary = {
        "intervals": len(runs),
        "failed_runs": sum(r["state"] != "success" for r in runs),
        "source_rows": sum(src.get(str(r["data_interval_start"])[:10], 0) for r in runs),
        "clickhouse_rows": sum(dst.values()),
        "mismatched_intervals": mismatched,
        "chunk_task_seconds": round(chunk_seconds, 1),
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    say("")
    say(json.dumps(summary))
    return 0 if not mismatched and summary["source_rows"] == summary["clickhouse_rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
