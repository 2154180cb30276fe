"""An isolated Airflow 3: metadata DB, scheduler, and the api-server (execution API, or UI + REST too),
on the LocalExecutor or on the CeleryExecutor with Celery workers.

``airflow backfill create`` only records the backfill; the scheduler creates and runs its DAG runs,
and every task process talks to the task execution API (``airflow api-server --apps execution``).
The demo, the orchestration bench and the native-backfill test all start Airflow through
:class:`AirflowStack`; the browser tests start it with ``apps="all"`` (UI, REST API and execution
API in one server) and :func:`ui_env` (every user an admin, so no login; connection Test enabled);
``make ui`` (:mod:`airflow_backfill_provider.testing.local_ui`) starts it with a login, the
dag-processor and the triggerer, on a port of the user's choosing.
Verified traps (Airflow 3.3.2) it handles:

* on SQLite, create the backfill before the scheduler starts (else "database is locked");
* the DAG must be unpaused, or its backfill runs stay queued forever;
* ``[core] parallelism`` caps worker processes (the default 32 would spawn 32 on a 2-core box);
* ``airflow standalone`` leaves orphans when signalled, so each component runs in its own process
  group and is stopped as a group;
* Celery workers on one machine need their own ``--celery-hostname`` and no log server each (they
  would all bind port 8793), and they all record the machine's name as the task instances'
  hostname: :func:`worker_hostname` gives each the name of a host of its own, as on separate hosts.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from airflow_backfill_provider.testing.services import free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
# The variable that names a Celery worker's host (see worker_hostname).
WORKER_HOSTNAME_VARIABLE = "ABP_WORKER_HOSTNAME"


class ApiError(RuntimeError):
    """An HTTP error answer of the api-server's REST API, with its status code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class PortInUseError(RuntimeError):
    """The api-server's port is taken by another process."""


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the stack's Celery workers: the host name each worker was
    given (several workers share this machine; on separate hosts the machine's name would do)."""
    return os.environ.get(WORKER_HOSTNAME_VARIABLE) or socket.getfqdn()


def wonderware_backfill_env(
    historian: str | Mapping[str, object],
    clickhouse: Path | str | Mapping[str, object],
    first_day: date,
    last_day: date,
    source_extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The default connections (the historian: a SQLAlchemy URL, or a connection's fields for SQL
    Server; ClickHouse: an embedded data directory, or a connection's fields for a server) and the
    ``wonderware_backfill`` settings for a backfill of ``first_day`` to ``last_day``."""
    target = (
        dict(clickhouse)
        if isinstance(clickhouse, Mapping)
        else {"conn_type": "clickhouse", "extra": {"chdb_path": str(clickhouse)}}
    )
    source = (
        {**historian, "extra": {**dict(historian.get("extra") or {}), **(source_extra or {})}}
        if isinstance(historian, Mapping)
        else {"conn_type": "wonderware", "extra": {"sqlalchemy_url": historian, **(source_extra or {})}}
    )
    return {
        "AIRFLOW_CONN_WONDERWARE_DEFAULT": json.dumps(source),
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": json.dumps(target),
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


def ui_env() -> dict[str, str]:
    """Settings for driving the UI from a test: SimpleAuthManager with every user an admin (the UI
    and ``GET /auth/token`` need no login) and the connection Test button enabled (default: off)."""
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }


@dataclass
class AirflowStack:
    """An isolated Airflow installation in ``home`` running the DAGs of ``dags_folder``: SQLite
    metadata DB and LocalExecutor unless told otherwise.

    :param executor: ``LocalExecutor``, or ``CeleryExecutor`` (then ``metadata_url`` and
        ``broker_url`` are required, and :meth:`running` starts one worker per ``celery_workers``)
    :param metadata_url: SQLAlchemy URL of the metadata database (default: SQLite in ``home``); the
        Celery result backend is the same database
    :param broker_url: the Celery broker, e.g. ``redis://127.0.0.1:6379/0``
    :param celery_workers: the workers' host names (``--celery-hostname``, and the hostname their
        task instances record)
    :param worker_concurrency: task slots per Celery worker
    :param apps: what the api-server serves: ``execution`` (the task execution API only, enough for
        a backfill) or ``all`` (also the UI and the REST API at :attr:`url`)
    :param dag_processor: also run ``airflow dag-processor``; without it the DAGs are the ones
        :meth:`prepare` serialized, which is all a test of fixed DAG files needs
    :param triggerer: also run ``airflow triggerer`` (without its log server), which deferrable
        tasks need: without one, a deferred task never resumes
    :param api_port: the api-server's port on 127.0.0.1 (default: a free one); :meth:`running`
        refuses to start when another process holds it
    :param base_env: the environment the components start from (default: this process's), under
        the stack's own settings and ``extra_env``
    :param startup_timeout: seconds the api-server may take to answer
    """

    home: Path
    dags_folder: Path
    parallelism: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    apps: str = "execution"
    dag_processor: bool = False
    triggerer: bool = False
    executor: str = "LocalExecutor"
    metadata_url: str | None = None
    broker_url: str | None = None
    celery_workers: tuple[str, ...] = ("worker-a", "worker-b")
    worker_concurrency: int = 2
    api_port: int | None = None
    base_env: Mapping[str, str] | None = None
    startup_timeout: float = 90.0
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor {self.executor!r}: choose one of {', '.join(EXECUTORS)}")
        if self.executor == "CeleryExecutor" and not (self.metadata_url and self.broker_url):
            raise ValueError("the CeleryExecutor needs a metadata_url (a database server) and a broker_url")
        self.home.mkdir(parents=True, exist_ok=True)
        self._token: str | None = None
        if self.api_port is None:
            self.api_port = free_port()
        self.env = {
            **(os.environ if self.base_env is None else self.base_env),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url or f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            **self.extra_env,
        }
        if self.metadata_url and self.metadata_url.startswith("postgresql+psycopg://"):
            # Airflow derives its async URL as postgresql+asyncpg (not installed); psycopg 3 is both.
            self.env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", self.metadata_url)
        if self.executor == "CeleryExecutor":
            self.env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": str(self.broker_url),
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.metadata_url}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                }
            )

    @property
    def url(self) -> str:
        """Base URL of the api-server (the UI and ``/api/v2`` when ``apps`` includes them)."""
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def prepare(self, dag_id: str | None) -> None:
        """Migrate the metadata DB, serialize the DAGs, unpause ``dag_id`` (unless None: a new DAG
        stays paused, as ``[core] dags_are_paused_at_creation`` makes it)."""
        self.cli("db", "migrate")
        self.cli("dags", "reserialize")
        if dag_id is not None:
            self.cli("dags", "unpause", dag_id)

    def _spawn(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.component = name  # type: ignore[attr-defined]
        self.procs.append(proc)

    def _spawn_celery_workers(self) -> None:
        for name in self.celery_workers:
            self._spawn(
                f"celery-{name}",
                "celery", "worker", "--celery-hostname", name, "--concurrency", str(self.worker_concurrency),
                "--skip-serve-logs", "--without-mingle", "--without-gossip",
                env={
                    WORKER_HOSTNAME_VARIABLE: name,
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
                },
            )  # fmt: skip

    @contextmanager
    def running(self):
        """The api-server, the scheduler, the Celery workers (CeleryExecutor), the dag-processor and
        the triggerer (if asked), stopped (as process groups) on exit."""
        if port_in_use(self.api_port):
            raise PortInUseError(
                f"127.0.0.1:{self.api_port} is already in use (another Airflow?): stop what holds it, "
                "or give the api-server another port."
            )
        try:
            self._spawn(
                "api-server", "api-server", "--apps", self.apps, "--host", "127.0.0.1", "--port", str(self.api_port)
            )  # fmt: skip
            if self.executor == "CeleryExecutor":
                # Up while the api-server starts, and both ready to take tasks before any is queued.
                self._spawn_celery_workers()
            self._wait_api_server()
            self._spawn("scheduler", "scheduler")
            if self.dag_processor:
                self._spawn("dag-processor", "dag-processor")
            if self.triggerer:
                self._spawn("triggerer", "triggerer", "--skip-serve-logs")
            yield self
        finally:
            self.stop()

    def _wait_api_server(self) -> None:
        """Until the api-server answers: its port, and with the UI its health endpoint too (the
        port opens before the app has loaded the UI and the auth manager). Raise, naming the log,
        as soon as it exits, or after :attr:`startup_timeout`."""
        health = f"{self.url}/api/v2/monitor/health"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self.check_alive()
            if port_in_use(self.api_port):
                if self.apps == "execution":
                    return
                try:
                    with urllib.request.urlopen(health, timeout=5) as response:
                        if response.status == 200:
                            return
                except OSError:  # URLError and HTTPError are OSErrors: not ready yet
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the api-server did not answer on {self.url} within {self.startup_timeout:.0f}s; "
                    f"see {self.home / 'api-server.log'}"
                )
            time.sleep(0.2)

    def token(self) -> str:
        """A JWT for the REST API: the one :meth:`login` got, else (``apps="all"`` with
        :func:`ui_env`, every user an admin) one asked for without a login."""
        if self._token is None:
            self._token = self.api("GET", "/auth/token", token=None)["access_token"]
        return self._token

    def login(self, username: str, password: str) -> str:
        """Log in through the REST API (``POST /auth/token``); later calls of :meth:`api` use the
        token. Raise :class:`ApiError` (401) for a wrong login."""
        body = {"username": username, "password": password}
        self._token = self.api("POST", "/auth/token", body, token=None)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: object = None, token: str | None = "auto") -> dict:
        """Call the api-server's REST API; return the decoded JSON answer (raise on an HTTP error,
        with the server's own reason)."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token() if token == 'auto' else token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise ApiError(
                f"{method} {path}: HTTP {err.code}: {err.read().decode()[:2000]}", err.code
            ) from err
        return json.loads(raw) if raw else {}

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

    def check_alive(self) -> None:
        """Raise, naming the component and its log, if a component of :meth:`running` exited."""
        dead = [p.component for p in self.procs if p.poll() is not None]  # type: ignore[attr-defined]
        if dead:
            raise RuntimeError(f"Airflow component(s) {dead} exited; see their logs in {self.home}")

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
                self.check_alive()
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
