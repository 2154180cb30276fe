"""An isolated Airflow 3 for a real native backfill: metadata DB, scheduler and execution API.

``airflow backfill create`` only records the backfill; the scheduler creates and runs its DAG runs,
and every task process talks to the task execution API (``airflow api-server --apps execution``).
The demo, the orchestration bench and the native-backfill test all start Airflow through
:class:`AirflowStack`. Verified traps (Airflow 3.3.2) it handles:

* on SQLite, create the backfill before the scheduler starts (else "database is locked");
* the DAG must be unpaused, or its backfill runs stay queued forever;
* ``[core] parallelism`` caps worker processes (the default 32 would spawn 32 on a 2-core box);
* ``airflow standalone`` leaves orphans when signalled, so each component runs in its own process
  group and is stopped as a group.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from airflow_backfill_provider.testing.services import free_port, wait_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def wonderware_backfill_env(
    historian_url: str,
    chdb_path: Path | str,
    first_day: date,
    last_day: date,
    source_extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The default connections (a SQLAlchemy historian, embedded ClickHouse) and the
    ``wonderware_backfill`` settings for a backfill of ``first_day`` to ``last_day``."""
    return {
        "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(
            {"conn_type": "wonderware", "extra": {"sqlalchemy_url": historian_url, **(source_extra or {})}}
        ),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps(
            {"conn_type": "clickhouse", "extra": {"chdb_path": str(chdb_path)}}
        ),
        "WONDERWARE_BACKFILL_START_DATE": first_day.isoformat(),
        "WONDERWARE_BACKFILL_END_DATE": last_day.isoformat(),
        # The backfill creates the runs; catchup would only race it for the same intervals.
        "WONDERWARE_BACKFILL_CATCHUP": "false",
    }


def backfill_args(
    dag_id: str, first_day: date, last_day: date, *, max_active_runs: int, conf: Mapping[str, object]
) -> list[str]:
    """The arguments of ``airflow backfill create`` for the daily intervals ``first_day``..``last_day``."""
    return [
        "backfill", "create", "--dag-id", dag_id,
        "--from-date", first_day.isoformat(), "--to-date", last_day.isoformat(),
        "--max-active-runs", str(max_active_runs), "--dag-run-conf", json.dumps(conf),
    ]  # fmt: skip


@dataclass
class AirflowStack:
    """An isolated Airflow installation in ``home`` running the DAGs of ``dags_folder``: SQLite
    metadata DB, LocalExecutor."""

    home: Path
    dags_folder: Path
    parallelism: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            **self.extra_env,
        }

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def prepare(self, dag_id: str) -> None:
        """Migrate the metadata DB, serialize the DAGs, unpause ``dag_id``."""
        self.cli("db", "migrate")
        self.cli("dags", "reserialize")
        self.cli("dags", "unpause", dag_id)

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs.append(
            subprocess.Popen(
                [AIRFLOW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )

    @contextmanager
    def running(self):
        """The execution API server and the scheduler, stopped (as process groups) on exit."""
        try:
            self._spawn(
                "api-server",
                "api-server",
                "--apps",
                "execution",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
            )
            wait_port(self.api_port, 90)
            self._spawn("scheduler", "scheduler")
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever is left in the group (task workers, gunicorn children)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs.clear()

    def metadata(self) -> sa.Engine:
        return sa.create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])

    def wait_for_runs(
        self, dag_id: str, expected: int, timeout: float = 600, want_all_success: bool = False
    ) -> list[dict]:
        """Wait until ``expected`` backfill runs of ``dag_id`` are finished (all successful, with
        ``want_all_success``, e.g. after a reprocessing backfill); return them."""
        engine = self.metadata()
        query = sa.text(
            "SELECT run_id, state, data_interval_start, data_interval_end, start_date, end_date "
            "FROM dag_run WHERE dag_id = :d AND run_type = 'backfill' ORDER BY data_interval_start"
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                dead = [p.args[1] for p in self.procs if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"Airflow component(s) {dead} exited; see their logs in {self.home}")
                with engine.connect() as conn:
                    runs = [dict(r._mapping) for r in conn.execute(query, {"d": dag_id})]
                done = [
                    r
                    for r in runs
                    if r["state"] in (("success",) if want_all_success else ("success", "failed"))
                ]
                if len(runs) >= expected and len(done) == len(runs):
                    # The scheduler marks the backfill completed a loop later; until then a new
                    # backfill of the DAG is refused ("Another backfill is running").
                    with engine.connect() as conn:
                        open_backfills = conn.execute(
                            sa.text(
                                "SELECT count(*) FROM backfill WHERE dag_id = :d AND completed_at IS NULL"
                            ),
                            {"d": dag_id},
                        ).scalar()
                    if not open_backfills:
                        return runs
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{len(done)}/{expected} backfill runs finished after {timeout:.0f}s; "
                        f"see the logs in {self.home}"
                    )
                time.sleep(1)
        finally:
            engine.dispose()

    def query(self, sql: str, **params) -> list[tuple]:
        """Rows of a query on the metadata database."""
        engine = self.metadata()
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def task_durations(self, dag_id: str, task_id: str) -> list[float]:
        rows = self.query(
            "SELECT duration FROM task_instance WHERE dag_id = :d AND task_id = :t", d=dag_id, t=task_id
        )
        return [float(r[0] or 0) for r in rows]
