"""`make bench ARGS=--orchestration`: what Airflow's orchestration costs around the chunk transfers.

A real native backfill (``airflow backfill create`` over ``--days`` daily intervals,
``--max-active-runs 4``, scheduler + ``airflow api-server --apps execution``, LocalExecutor, SQLite
metadata DB; the runner of ``make demo``, ``airflow_backfill_provider.testing.stack``) of a
simulated SQLite historian into embedded ClickHouse. It reports the backfill's wall time (from ``backfill create``
until the last run finished) against the sum of the chunk task durations, the sum of all task
durations, and the import cost of the DAG file and the operator module in a fresh process (paid by
the DAG processor on every parse and by every task process). The last line is one JSON object.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "wonderware_backfill"
START = datetime(2025, 1, 1)


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - a command-line script


_IMPORT_PROBE = """
import time, sys
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
import airflow_backfill_provider.operators.wonderware
t2 = time.perf_counter()
import runpy
runpy.run_path(sys.argv[1])
t3 = time.perf_counter()
print(round(t1 - t0, 3), round(t2 - t1, 3), round(t3 - t2, 3))
"""


def import_costs(repeat: int = 3) -> dict:
    """Fresh-process import times: airflow.sdk, our operator module on top, the DAG file on top."""
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, str(ROOT / "dags" / "wonderware_backfill.py")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        runs.append([float(x) for x in out.stdout.split()[-3:]])
    sdk, operator, dag = (statistics.median(r[i] for r in runs) for i in range(3))
    return {"airflow_sdk_seconds": sdk, "operator_module_seconds": operator, "dag_file_seconds": dag}


def orchestration(args) -> int:
    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate
    from airflow_backfill_provider.testing.stack import AirflowStack, backfill_args, wonderware_backfill_env

    days = getattr(args, "days", None) or 14
    tags = min(args.tags, 40)
    work = Path(tempfile.mkdtemp(prefix="abp-bench-orch-"))
    began = time.monotonic()
    try:
        historian_url = f"sqlite:///{work / 'historian.db'}"
        chdb_path = work / "clickhouse"
        sim = simulate(
            historian_url,
            SimulatorConfig(
                start=START,
                end=START + timedelta(days=days),
                tags=tags,
                rate=60,
                seed=5,
                boundary_every=timedelta(days=1),
            ),
            replace=True,
        )
        say(f"Simulated {sim.total_rows:,} rows of {tags} tags over {days} days into SQLite")
        first_day, last_day = START.date(), (START + timedelta(days=days - 1)).date()
        stack = AirflowStack(
            home=work / "airflow",
            dags_folder=ROOT / "dags",
            parallelism=4,
            extra_env=wonderware_backfill_env(historian_url, chdb_path, first_day, last_day),
        )
        say("Preparing Airflow (metadata DB, DAG serialization) …")
        stack.prepare(DAG_ID)
        # One chunk per interval (a day of all tags), as the bench sizes chunks.
        conf = {"tag_group_size": tags, "chunk_window": "P1D"}
        backfill = backfill_args(DAG_ID, first_day, last_day, max_active_runs=4, conf=conf)
        say("$ airflow " + " ".join(backfill))
        t0 = time.monotonic()
        stack.cli(*backfill)
        with stack.running():
            runs = stack.wait_for_runs(DAG_ID, expected=days, timeout=1200)
        wall = time.monotonic() - t0
        chunk = stack.task_durations(DAG_ID, "fetch_insert")
        every = stack.query("SELECT task_id, duration FROM task_instance WHERE dag_id = :d", d=DAG_ID)
        per_task: dict[str, float] = {}
        for task_id, duration in every:
            per_task[task_id] = per_task.get(task_id, 0.0) + float(duration or 0)
        rows = stack.query(
            "SELECT value FROM xcom WHERE dag_id = :d AND task_id = 'fetch_insert' AND key = 'return_value'",
            d=DAG_ID,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    moved = 0
    for (value,) in rows:
        try:
            moved += int(json.loads(value).get("rows", 0))
        except (TypeError, ValueError, AttributeError):
            pass
    imports = import_costs()
    failed = sum(r["state"] != "success" for r in runs)
    result = {
        "intervals": len(runs),
        "failed_runs": failed,
        "max_active_runs": 4,
        "parallelism": 4,
        "source_rows": sim.total_rows,
        "rows_moved": moved,
        "wall_seconds": round(wall, 1),
        "chunk_task_seconds_sum": round(sum(chunk), 1),
        "all_task_seconds_sum": round(sum(per_task.values()), 1),
        "task_seconds_by_task": {k: round(v, 1) for k, v in sorted(per_task.items())},
        "chunk_tasks": len(chunk),
        "wall_over_chunk_sum": round(wall / sum(chunk), 2) if sum(chunk) else None,
        "imports": imports,
        "total_seconds": round(time.monotonic() - began, 1),
    }
    say()
    say(f"Native backfill, {days} daily intervals, --max-active-runs 4, parallelism 4")
    say(f"  wall time (backfill create → last run finished)  {wall:8.1f} s")
    say(f"  sum of chunk task durations ({len(chunk)} tasks)            {sum(chunk):8.1f} s")
    say(f"  sum of all task durations                          {sum(per_task.values()):8.1f} s")
    for task_id, seconds in sorted(per_task.items()):
        say(f"    {task_id:<20} {seconds:8.1f} s")
    say(
        f"  fresh-process imports: airflow.sdk {imports['airflow_sdk_seconds']:.2f} s, our operator module "
        f"+{imports['operator_module_seconds']:.2f} s, the DAG file +{imports['dag_file_seconds']:.2f} s"
    )
    say(json.dumps(result))
    return 0 if not failed else 1
