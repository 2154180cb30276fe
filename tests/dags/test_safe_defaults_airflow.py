"""Safe defaults with the real scheduler and CLI (issue 9): what unpausing and triggering start.

With default settings, unpausing ``wonderware_backfill`` makes one scheduled run (the latest
interval) whose tasks are all skipped; a plain ``airflow dags trigger`` dry run (no logical date)
covers the last complete interval and writes nothing. Once ``WONDERWARE_BACKFILL_START_DATE`` is
set, ``airflow dags trigger --logical-date`` before it is refused, naming both dates; the REST API
(and so the UI) makes such a run, which runs no task, and the run's note says why.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow_backfill_provider.testing.counts import clickhouse_counts
from airflow_backfill_provider.testing.stack import AirflowStack, ui_env

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
DAG = "wonderware_backfill"


def finished_runs(stack: AirflowStack, expected: int, timeout: float = 300) -> dict[str, tuple]:
    """``{run_type: (state, logical_date, data_interval_start, data_interval_end)}`` once ``expected``
    runs have finished."""
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        rows = stack.query(
            "SELECT run_type, state, logical_date, data_interval_start, data_interval_end FROM dag_run "
            "WHERE dag_id = :d",
            d=DAG,
        )
        if len(rows) >= expected and all(r[1] in ("success", "failed") for r in rows):
            return {r[0]: r[1:] for r in rows}
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs after {timeout:.0f}s: {rows}; see the logs in {stack.home}")
        time.sleep(2)


def task_states(stack: AirflowStack, run_type: str) -> dict[str, set[str]]:
    rows = stack.query(
        "SELECT t.task_id, t.state FROM task_instance t JOIN dag_run r ON r.dag_id = t.dag_id "
        "AND r.run_id = t.run_id WHERE r.dag_id = :d AND r.run_type = :k",
        d=DAG,
        k=run_type,
    )
    out: dict[str, set[str]] = {}
    for task_id, state in rows:
        out.setdefault(task_id, set()).add(state)
    return out


def test_unpause_and_a_plain_dry_run_trigger_start_no_load(historian_server, tmp_path):
    url, _ = historian_server
    chdb_path = tmp_path / "chdb"
    env = {
        "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(
            {"conn_type": "wonderware", "extra": {"sqlalchemy_url": url}}
        ),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps(
            {"conn_type": "clickhouse", "extra": {"chdb_path": str(chdb_path)}}
        ),
        "WONDERWARE_BACKFILL_RETRIES": "0",
    }
    stack = AirflowStack(home=tmp_path / "airflow", dags_folder=DAGS_FOLDER, parallelism=2, extra_env=env)
    stack.prepare(DAG)  # unpaused, as the Trigger form's "Unpause on trigger" box does
    stack.cli("dags", "trigger", DAG, "--conf", json.dumps({"dry_run": True, "chunk_window": "P1D"}))
    with stack.running():
        runs = finished_runs(stack, expected=2)

    assert set(runs) == {"scheduled", "manual"}  # nothing else: no catchup
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (today - timedelta(days=1)).strftime("%Y-%m-%d")
    state, _, start, end = runs["scheduled"]
    assert state == "success" and str(start).startswith(yesterday)
    assert task_states(stack, "scheduled") == dict.fromkeys(["plan", "fetch_insert", "finalize"], {"skipped"})
    state, logical_date, start, end = runs["manual"]
    assert (state, logical_date, start) == ("success", None, None)  # no data interval of its own ...
    assert task_states(stack, "manual") == {
        "plan": {"success"}, "fetch_insert": {"success"}, "finalize": {"skipped"},
    }  # fmt: skip
    # ... it planned yesterday's interval (the last complete one) as a dry run
    (windows,) = stack.query(
        "SELECT value FROM xcom WHERE dag_id = :d AND task_id = 'plan' AND key = 'return_value'", d=DAG
    )
    plan = json.loads(windows[0])
    assert plan[0]["window_start"].startswith(yesterday) and all(c["dry_run"] for c in plan)
    assert not chdb_path.exists() or clickhouse_counts(chdb_path) == {}

    # a configured start date: a manual run dated before it is refused by the CLI, not run empty ...
    configured = AirflowStack(
        home=tmp_path / "airflow",
        dags_folder=DAGS_FOLDER,
        apps="all",
        extra_env={**env, **ui_env(), "WONDERWARE_BACKFILL_START_DATE": "2025-01-01"},
    )
    configured.cli("dags", "reserialize")
    refused = configured.cli(
        "dags", "trigger", DAG, "--logical-date", "2024-06-01T00:00:00+00:00", check=False
    )
    assert refused.returncode != 0
    assert (
        "Logical date [2024-06-01T00:00:00+00:00] should be >= start_date [2025-01-01T00:00:00+00:00]"
        in refused.stderr
    )
    # ... and the REST API (the UI's Trigger form) makes one, which Airflow gives no task and marks
    # "success": the provider's listener notes on the run why nothing ran and what to do instead
    with configured.running():
        run = configured.api(
            "POST", f"/api/v2/dags/{DAG}/dagRuns",
            {"logical_date": "2024-06-01T00:00:00+00:00", "conf": {"dry_run": True}},
        )  # fmt: skip
        path = f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}"
        deadline = time.monotonic() + 120
        while (run := configured.api("GET", path))["state"] != "success":
            assert run["state"] in ("queued", "running") and time.monotonic() < deadline, run
            time.sleep(1)
        deadline = time.monotonic() + 30
        while not run["note"] and time.monotonic() < deadline:  # committed with the state, or a loop later
            time.sleep(1)
            run = configured.api("GET", path)
        tasks = configured.api("GET", f"{path}/taskInstances")
    assert tasks["total_entries"] == 0
    assert run["note"].startswith(
        "No task ran: this run's logical date 2024-06-01T00:00:00+00:00 is before the start date of "
        "wonderware_backfill (2025-01-01T00:00:00+00:00)"
    )
    assert "airflow backfill create" in run["note"] and "range_start/range_end" in run["note"]
