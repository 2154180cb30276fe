"""`make demo`: a real Airflow native backfill of a simulated historian into embedded ClickHouse.

1. simulates the demo history (``simulator.demo_config()``: 3 days of 36 tags, analog, discrete,
   string, Sys*, hostile names) into SQLite;
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
from datetime import timedelta
from pathlib import Path

from airflow_backfill_provider.testing.counts import clickhouse_counts, source_days
from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
DAG_ID = "wonderware_backfill"


def say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


def main() -> int:
    began = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    historian_url = f"sqlite:///{DEMO / 'historian.db'}"
    chdb_path = DEMO / "clickhouse"

    from airflow_backfill_provider.testing.simulator import DEMO_DAYS, DEMO_START, demo_config, simulate

    sim = simulate(historian_url, demo_config(), replace=True)
    say(
        f"Simulated {sim.total_rows:,} History rows of {sum(sim.tags.values())} tags {sim.tags} in {sim.seconds:.1f}s"
    )

    first_day, last_day = DEMO_START.date(), (DEMO_START + timedelta(days=DEMO_DAYS - 1)).date()
    stack = AirflowStack(
        home=DEMO / "airflow",
        dags_folder=ROOT / "dags",
        parallelism=4,
        extra_env=wonderware_backfill_env(historian_url, chdb_path, first_day, last_day),
    )
    say("Preparing Airflow (metadata DB, DAG serialization) …")
    stack.prepare(DAG_ID)
    backfill = backfill_args(
        DAG_ID, first_day, last_day, max_active_runs=2, conf={"tag_group_size": 10, "chunk_window": "PT12H"}
    )
    say("$ airflow " + " ".join(backfill))
    stack.cli(*backfill)
    with stack.running():
        say(
            f"Scheduler and execution API up (parallelism {stack.parallelism}); waiting for {DEMO_DAYS} runs …"
        )
        runs = stack.wait_for_runs(DAG_ID, expected=DEMO_DAYS, timeout=480)
    chunk_seconds = sum(stack.task_durations(DAG_ID, "fetch_insert"))

    src, dst = source_days(historian_url), clickhouse_counts(chdb_path, by="day")
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
