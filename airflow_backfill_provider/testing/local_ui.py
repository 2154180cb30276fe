"""``make ui``: the whole Airflow UI on this machine, on the demo's historian and embedded ClickHouse.

From a fresh clone to a UI to log in to, in one command (docs/getting-started.md):

* the demo's historian (:func:`~airflow_backfill_provider.testing.simulator.demo_config`), simulated
  once into SQLite at ``<dir>/historian.db``;
* Airflow in ``<dir>/airflow`` (SQLite metadata DB, LocalExecutor), migrated, its DAGs serialized
  and started as :class:`~airflow_backfill_provider.testing.stack.AirflowStack` starts it for the
  tests: the api-server (UI, REST API, task execution API), the scheduler, the dag-processor and
  the triggerer, each in its own process group, with their logs in ``<dir>/airflow/*.log``;
* a login: Airflow's SimpleAuthManager with one admin, ``admin``, whose password Airflow generates
  on the first start into ``<dir>/airflow/passwords.json``; the connection Test button is on;
* the two default connections, stored in the metadata DB as a user's would be (kept if they exist):
  ``wonderware_default`` (the SQLite historian) and ``clickhouse_default`` (embedded ClickHouse in
  ``<dir>/clickhouse``).

It prints the URL and the login, stays in the foreground until Ctrl-C (or SIGTERM, SIGHUP), then
stops every process it started. ``<dir>`` is kept for the next start; delete it to begin again. The
caller's ``AIRFLOW_*`` variables are not passed on (this is an installation of its own); DAG
settings such as ``WONDERWARE_BACKFILL_START_DATE`` are.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

from airflow_backfill_provider.testing.stack import AirflowStack, ApiError, port_in_use
from airflow_backfill_provider.testing.ui_connections import UIConnection, local_connections

USER = "admin"
PASSWORDS_FILE = "passwords.json"
DEFAULT_PORT = 8080
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COMPONENTS = "the api-server, the scheduler, the dag-processor and the triggerer"


def say(message: str = "") -> None:
    print(message, flush=True)  # noqa: T201 - a command-line tool


def login_env(airflow_home: Path) -> dict[str, str]:
    """Airflow's SimpleAuthManager with one admin, :data:`USER`, whose password Airflow generates
    into ``airflow_home/passwords.json`` on its first start; the connection Test button on."""
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / PASSWORDS_FILE),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }


def _stop_on_signal(signum: int, frame: object) -> None:
    # Only the first signal counts: the stop that follows must not be cut short (it ends in SIGKILL
    # for whatever has not exited after 30 s).
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


def ensure_historian(path: Path) -> Path:
    """The demo's historian in SQLite at ``path``, simulated unless an earlier start made it (into a
    ``.partial`` file first, so an interrupted simulation is never taken for a finished one)."""
    from airflow_backfill_provider.testing.simulator import demo_config, simulate

    if path.exists():
        say(f"Historian: {path} (made by an earlier start)")
        return path
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    say(f"Simulating the demo historian into {path} …")
    summary = simulate(f"sqlite:///{partial}", demo_config(), replace=True)
    partial.rename(path)
    say(
        f"  {summary.total_rows:,} History rows of {sum(summary.tags.values())} tags in {summary.seconds:.1f}s"
    )
    return path


def admin_password(passwords_file: Path, timeout: float = 60) -> str:
    """The admin's password, which the api-server writes when it starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(passwords_file.read_text())[USER]
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the api-server wrote no password for {USER!r} into {passwords_file}"
                ) from None
            time.sleep(0.5)


def ensure_connection(stack: AirflowStack, connection: UIConnection) -> str:
    """Create ``connection`` through the REST API unless it exists; say which."""
    try:
        stack.api("GET", f"/api/v2/connections/{connection.conn_id}")
        return "kept"
    except ApiError as err:
        if err.status != 404:
            raise
    stack.api("POST", "/api/v2/connections", connection.rest_body())
    return "created"


def _print_logs_of_dead(stack: AirflowStack) -> None:
    for proc in stack.procs:
        if proc.poll() is not None:
            log = stack.home / f"{proc.component}.log"  # type: ignore[attr-defined]
            lines = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
            say(f"--- the last lines of {log} (exit code {proc.returncode}):")
            for line in lines:
                say(line)


def serve(home: Path, dags_folder: Path, port: int, parallelism: int) -> int:
    """Start everything, print the URL and the login, run until a stop signal; 1 if a component died."""
    from airflow_backfill_provider.testing.simulator import DEMO_DAYS, DEMO_START, demo_config

    home.mkdir(parents=True, exist_ok=True)
    historian = ensure_historian(home / "historian.db")
    chdb_path = home / "clickhouse"
    airflow_home = home / "airflow"
    stack = AirflowStack(
        home=airflow_home,
        dags_folder=dags_folder,
        parallelism=parallelism,
        apps="all",
        dag_processor=True,
        triggerer=True,
        api_port=port,
        base_env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        # a busy 2-core machine can take minutes to load the api-server's app
        startup_timeout=300,
        extra_env=login_env(airflow_home),
    )
    say(f"Preparing Airflow in {airflow_home}: airflow db migrate, airflow dags reserialize …")
    stack.prepare(None)
    say(f"Starting {COMPONENTS} …")
    with stack.running():
        password = admin_password(airflow_home / PASSWORDS_FILE)
        stack.login(USER, password)
        connections = local_connections(historian_url=f"sqlite:///{historian}", chdb_path=str(chdb_path))
        done = {c.conn_id: ensure_connection(stack, c) for c in connections}
        config = demo_config()
        last_day = DEMO_START + timedelta(days=DEMO_DAYS)
        say()
        say(f"Airflow {version('apache-airflow')} is up: {COMPONENTS}.")
        say(f"  UI:          {stack.url}")
        say(f"  Login:       {USER} / {password}")
        say(
            f"  Historian:   wonderware_default ({done['wonderware_default']}): SQLite {historian}, "
            f"{DEMO_START:%Y-%m-%d} to {last_day:%Y-%m-%d} UTC, {config.tags} tags + {config.sys_tags} Sys*"
        )
        say(f"  ClickHouse:  clickhouse_default ({done['clickhouse_default']}): embedded, {chdb_path}")
        say(
            "  Rows loaded: python -m airflow_backfill_provider.testing.clickhouse_rows "
            f"--chdb-path {chdb_path}"
        )
        say(f"  Logs:        {airflow_home}/*.log; task logs in {airflow_home / 'logs'}")
        say("Press Ctrl-C to stop everything.")
        try:
            while True:
                stack.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            say()
            say(f"Stopping {COMPONENTS} …")
            raise
        except RuntimeError as err:
            say(f"{err}; stopping the others.")
            _print_logs_of_dead(stack)
            return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_backfill_provider.testing.local_ui",
        description="The whole Airflow UI on this machine (scheduler, api-server, dag-processor, "
        "triggerer) on the demo's SQLite historian and embedded ClickHouse, with the default "
        "connections and a login; in the foreground until Ctrl-C. `make ui` runs it.",
    )
    parser.add_argument("--dir", type=Path, default=Path(".ui"), help="where everything is kept (.ui)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"the UI's port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="the DAGs to load (dags)")
    parser.add_argument("--parallelism", type=int, default=4, help="task processes at once (4)")
    args = parser.parse_args(argv)
    dags_folder = args.dags_folder.resolve()
    if not (dags_folder / "wonderware_backfill.py").is_file():
        parser.error(f"{dags_folder} holds no wonderware_backfill.py: run `make ui` in the repository's root")
    if port_in_use(args.port):
        parser.exit(
            1,
            f"127.0.0.1:{args.port} is already in use (another Airflow, or `make ui` in another "
            f"terminal?): stop it, or choose another port: make ui UI_PORT={args.port + 1}\n",
        )
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_on_signal)
    try:
        return serve(args.dir.resolve(), dags_folder, args.port, args.parallelism)
    except KeyboardInterrupt:
        say("Stopped: no process of this Airflow is left.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
