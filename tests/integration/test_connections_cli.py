"""The documented connections, added and tested through the real Airflow CLI, then read and tested
through the real api-server's REST API the way the UI does: every secret is a canary that must never
come back, neither in a command's output, nor in the metadata table ``log``, nor in a REST answer.

One isolated Airflow home with a fresh SQLite metadata database for the module.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_backfill_provider.testing.services import (
    create_database,
    free_port,
    postgres_server,
    redis_server,
    wait_http,
)
from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate
from airflow_backfill_provider.testing.stack import AIRFLOW, AirflowStack, ui_env
from airflow_backfill_provider.testing.tls import client_key_and_cert
from airflow_backfill_provider.testing.ui_connections import kube_config

PG_PASSWORD = f"canary-pg-{secrets.token_hex(6)}"  # the real password of the PostgreSQL historian
HISTORIAN = SimulatorConfig(start=datetime(2025, 1, 1), end=datetime(2025, 1, 1, 2), tags=6, rate=600)


@dataclass
class Documented:
    """A connection as docs/connections.md or docs/temporal.md add it with ``airflow connections add``."""

    conn_id: str
    args: list[str]
    succeeds: bool  # whether its Test succeeds here
    says: str  # words its Test message holds
    canaries: tuple[str, ...] = ()


def canary(name: str) -> str:
    return f"canary-{name}-{secrets.token_hex(6)}"


def documented(tmp: Path, pg_url: str, closed_port: int) -> list[Documented]:
    sql_server_pw, clickhouse_pw, api_key = canary("sqlserver"), canary("clickhouse"), canary("api-key")
    key_pem, cert_pem = client_key_and_cert()
    (tmp / "client.pem").write_text(cert_pem)
    key_canary = key_pem.split("\n")[1]  # a line of the key's base64 body
    sqlite = tmp / "historian.db"
    simulate(f"sqlite:///{sqlite}", HISTORIAN, replace=True)
    return [
        Documented(
            "wonderware_default",
            [
                "--conn-type",
                "wonderware",
                "--conn-extra",
                json.dumps({"sqlalchemy_dsn": f"sqlite:///{sqlite}"}),
            ],
            succeeds=True,
            says="TagRef holds 9 tags",
        ),
        Documented(
            "wonderware_sqlserver",
            [
                "--conn-type",
                "wonderware",
                "--conn-host",
                "127.0.0.1",
                "--conn-port",
                str(closed_port),
                "--conn-schema",
                "Runtime",
                "--conn-login",
                "historian_reader",
                "--conn-password",
                sql_server_pw,
                "--conn-extra",
                json.dumps({"login_timeout": 5, "retry_attempts": 5}),
            ],  # fmt: skip
            succeeds=False,
            says=f"Connecting failed on mssql+pymssql://historian_reader:***@127.0.0.1:{closed_port}/Runtime",
            canaries=(sql_server_pw,),
        ),
        Documented(
            "wonderware_pg",
            [
                "--conn-type",
                "wonderware",
                "--conn-login",
                "postgres",
                "--conn-password",
                PG_PASSWORD,
                "--conn-extra",
                json.dumps({"sqlalchemy_dsn": pg_url}),
            ],  # fmt: skip
            succeeds=True,
            says="TagRef holds 9 tags",
            canaries=(PG_PASSWORD,),
        ),
        Documented(
            "clickhouse_default",
            ["--conn-type", "chdb", "--conn-extra", json.dumps({"chdb_path": str(tmp / "chdb")})],
            succeeds=True,
            says=f"embedded chdb at {str(tmp / 'chdb')!r}",
        ),
        Documented(
            "clickhouse_server",
            [
                "--conn-type",
                "clickhouse",
                "--conn-host",
                "127.0.0.1",
                "--conn-port",
                str(closed_port),
                "--conn-schema",
                "default",
                "--conn-login",
                "airflow",
                "--conn-password",
                clickhouse_pw,
                "--conn-extra",
                json.dumps({"secure": False}),
            ],  # fmt: skip
            succeeds=False,
            says="Connection refused",
            canaries=(clickhouse_pw,),
        ),
        Documented(
            "temporal_cloud",
            [
                "--conn-type",
                "temporal",
                "--conn-host",
                "127.0.0.1",
                "--conn-port",
                str(closed_port),
                "--conn-password",
                api_key,
                "--conn-extra",
                json.dumps({"namespace": "ingestion.a1b2c", "connect_timeout": 3}),
            ],  # fmt: skip
            succeeds=False,
            says=f"Cannot connect to Temporal at 127.0.0.1:{closed_port}",
            canaries=(api_key,),
        ),
        Documented(
            "temporal_mtls",
            [
                "--conn-type",
                "temporal",
                "--conn-host",
                "127.0.0.1",
                "--conn-port",
                str(closed_port),
                "--conn-password",
                key_pem,
                "--conn-extra",
                json.dumps(
                    {
                        "namespace": "ingestion",
                        "tls_client_cert": str(tmp / "client.pem"),
                        "connect_timeout": 3,
                    }
                ),
            ],  # fmt: skip
            succeeds=False,
            says="Connection refused",
            canaries=(key_canary,),
        ),
    ]


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """An isolated Airflow home (fresh SQLite metadata DB, connection Test enabled), the documented
    connections added through ``airflow connections add``, and the CLI outputs of adding them."""
    tmp = tmp_path_factory.mktemp("connections-cli")
    with postgres_server(password=PG_PASSWORD) as server:
        with_password = create_database(server, "historian")
        simulate(with_password, HISTORIAN, replace=True)
        pg_url = with_password.replace(f":{PG_PASSWORD}@", "@")  # as the docs write it: no password
        assert PG_PASSWORD not in pg_url
        stack = AirflowStack(
            home=tmp / "home",
            dags_folder=tmp / "dags",
            extra_env={**ui_env(), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"},
        )
        (tmp / "dags").mkdir()
        stack.cli("db", "migrate")
        connections = documented(tmp, pg_url, free_port())
        outputs = {}
        for conn in connections:
            added = stack.cli("connections", "add", conn.conn_id, *conn.args)
            outputs[conn.conn_id] = added.stdout + added.stderr
        yield stack, connections, outputs


def all_canaries(connections) -> list[str]:
    found = [c for conn in connections for c in conn.canaries]
    assert len(found) == 5
    return found


def test_cli_add_prints_no_secret(airflow):
    _, connections, outputs = airflow
    for conn in connections:
        assert f"Successfully added `conn_id`={conn.conn_id}" in outputs[conn.conn_id]
        for secret in all_canaries(connections):
            assert secret not in outputs[conn.conn_id], f"{conn.conn_id}: a secret in the CLI output"


def test_the_audit_log_keeps_no_secret(airflow):
    stack, connections, _ = airflow
    with stack.metadata().connect() as db:
        rows = db.execute(sa.text("SELECT * FROM log WHERE event LIKE '%connections_add%'")).all()
    assert len(rows) == len(connections)  # the log is written: an empty log proves nothing
    text = " ".join(str(value) for row in rows for value in row)
    assert all(conn.conn_id in text for conn in connections)
    for secret in all_canaries(connections):
        assert secret not in text


def test_cli_test_of_every_documented_connection(airflow):
    """``airflow connections test`` prints only "Connection success!", or the failure's message."""
    stack, connections, _ = airflow
    for conn in connections:
        result = stack.cli("connections", "test", conn.conn_id, check=False)
        out = result.stdout + result.stderr
        assert ("Connection success!" if conn.succeeds else "Connection failed!") in out, (conn.conn_id, out)
        assert (result.returncode == 0) is conn.succeeds
        if not conn.succeeds:  # the console wraps long lines: compare without whitespace
            assert "".join(conn.says.split()) in "".join(out.split()), (conn.conn_id, out[-2000:])
        for secret in all_canaries(connections):
            assert secret not in out


# -- the api-server, as the UI uses it --------------------------------------------------------------


@pytest.fixture(scope="module")
def api(airflow):
    """The REST API and the UI's routes of a real ``airflow api-server`` on the same home."""
    stack, connections, _ = airflow
    log = open(stack.home / "api-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [AIRFLOW, "api-server", "--apps", "core", "--host", "127.0.0.1", "--port", str(stack.api_port)],
        env=stack.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"{stack.url}/api/v2/monitor/health", 120)
        yield stack, connections
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def ui_test_body(listed: dict) -> dict:
    """The body the connection list's Test button posts (Airflow 3.3.2's UI): empty strings for
    unset fields, and ``Number(port)``, which is 0 for a connection without a port."""
    return {
        "connection_id": listed["connection_id"],
        "conn_type": listed["conn_type"],
        "description": listed["description"] or "",
        "extra": listed["extra"] or "{}",
        "host": listed["host"] or "",
        "login": listed["login"] or "",
        "password": listed["password"] or "",
        "port": listed["port"] or 0,
        "schema": listed["schema"] or "",
    }


def test_rest_answers_hold_no_secret(api):
    stack, connections = api
    listed = stack.api("GET", "/api/v2/connections?limit=100")
    texts = [json.dumps(listed)]
    for conn in connections:
        one = stack.api("GET", f"/api/v2/connections/{conn.conn_id}")
        texts.append(json.dumps(one))
        if conn.canaries:
            assert one["password"] == "***"
    assert {c["connection_id"] for c in listed["connections"]} == {c.conn_id for c in connections}
    extra = json.loads(stack.api("GET", "/api/v2/connections/wonderware_pg")["extra"])
    assert extra == {"sqlalchemy_dsn": "***"}  # the URL's extra name is redacted, password or not
    for secret in all_canaries(connections):
        assert not any(secret in text for text in texts)


def test_a_secret_typed_into_a_secret_extra_never_reaches_the_browser(api):
    """Against the docs, a password inside the URL, or a PEM key in the extra: shown as ***."""
    stack, _ = api
    password, key_line = canary("url-password"), canary("key-line")
    typed = {
        "wonderware": {"sqlalchemy_dsn": f"postgresql+psycopg://reader:{password}@127.0.0.1:5432/h"},
        "temporal": {
            "tls_client_private_key": f"-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----"
        },
    }
    for conn_type, extra in typed.items():
        conn_id = f"typed_{conn_type}"
        body = {"connection_id": conn_id, "conn_type": conn_type, "host": "h", "extra": json.dumps(extra)}
        answers = [
            stack.api("POST", "/api/v2/connections", body),
            stack.api("GET", f"/api/v2/connections/{conn_id}"),
            stack.api("GET", "/api/v2/connections?limit=100"),
        ]
        stack.api("DELETE", f"/api/v2/connections/{conn_id}")
        assert json.loads(answers[1]["extra"]) == {key: "***" for key in extra}
        for answer in answers:
            assert password not in json.dumps(answer) and key_line not in json.dumps(answer)


def test_the_list_test_button_of_every_documented_connection(api):
    """Including the connections without a port, which Airflow 3.3.2 alone refuses with HTTP 400."""
    stack, connections = api
    listed = {c["connection_id"]: c for c in stack.api("GET", "/api/v2/connections?limit=100")["connections"]}
    assert listed["clickhouse_default"]["port"] is None and listed["wonderware_default"]["port"] is None
    for conn in connections:
        result = stack.api("POST", "/api/v2/connections/test", ui_test_body(listed[conn.conn_id]))
        assert result["status"] is conn.succeeds, (conn.conn_id, result)
        assert conn.says in result["message"], (conn.conn_id, result)
        assert all(secret not in result["message"] for secret in all_canaries(connections))


def test_saving_the_edit_form_unchanged_keeps_the_secrets(api):
    """The edit form posts the redacted values back (*** for the password and the URL extra)."""
    stack, _ = api
    shown = stack.api("GET", "/api/v2/connections/wonderware_pg")
    body = {
        k: shown[k] for k in ("connection_id", "conn_type", "host", "login", "password", "port", "schema")
    }
    stack.api("PATCH", "/api/v2/connections/wonderware_pg", {**body, "extra": shown["extra"]})
    result = stack.api("POST", "/api/v2/connections/test", ui_test_body(shown))
    assert result["status"] and "TagRef holds 9 tags" in result["message"]


def test_the_forms_the_ui_renders(api):
    stack, _ = api
    meta = {h["connection_type"]: h for h in stack.api("GET", "/ui/connections/hook_meta")}
    chdb = meta["chdb"]
    assert chdb["hook_name"] == "ClickHouse, embedded (chdb)"
    assert chdb["extra_fields"]["chdb_path"]["schema"]["title"] == "Data directory"
    assert all(chdb["standard_fields"][f]["hidden"] for f in ("host", "port", "login", "password"))
    reader = meta["wonderware"]["extra_fields"]["reader"]
    assert reader["schema"]["enum"] == ["auto", "arrow", "dbapi"] and reader["value"] == "auto"
    temporal = meta["temporal"]
    assert temporal["standard_fields"]["password"]["title"] == "API key, or mTLS client key (PEM)"
    assert temporal["extra_fields"]["tls_client_cert"]["schema"]["format"] == "multiline"


# -- the Kubernetes, Redis and Airflow API connections (docs/kubernetes.md, docs/sync.md) ----------


def test_a_kube_config_never_reaches_the_browser(api):
    """However it is stored (the form's field stores text; an environment variable or the REST API
    can hold an object), the kube config comes back as ***, and the list's Test, which posts that
    *** back, still tests the stored kube config (its API server is a closed port here)."""
    stack, _ = api
    port = free_port()
    for shape in ("text", "object"):
        token, client_key = canary("kube-token"), canary("kube-key")
        config = kube_config(f"https://127.0.0.1:{port}", token, client_key)
        conn_id = f"kubernetes_{shape}"
        extra = {
            "kube_config": json.dumps(config) if shape == "text" else config,
            "namespace": "cresta-cron",
        }
        body = {"connection_id": conn_id, "conn_type": "kubernetes", "extra": json.dumps(extra)}
        answers = [stack.api("POST", "/api/v2/connections", body)]
        one = stack.api("GET", f"/api/v2/connections/{conn_id}")
        listed = {
            c["connection_id"]: c for c in stack.api("GET", "/api/v2/connections?limit=100")["connections"]
        }
        test_body = ui_test_body(listed[conn_id])
        tested = stack.api("POST", "/api/v2/connections/test", test_body)
        stack.api("DELETE", f"/api/v2/connections/{conn_id}")
        answers += [one, listed, test_body, tested]
        for answer in answers:
            assert token not in json.dumps(answer) and client_key not in json.dumps(answer), (shape, answer)
        assert json.loads(one["extra"])["namespace"] == "cresta-cron"
        assert tested["status"] is False
        assert "Connection refused" in tested["message"] and str(port) in tested["message"], tested


def test_the_documented_redis_connection_tests_with_a_ping(api):
    """docs/sync.md's ``redis_default`` (host, port, password), saved and tested as the UI does."""
    stack, _ = api
    password = canary("redis")
    with redis_server(password=password) as redis:
        for conn_id, secret in (("redis_default", password), ("redis_wrong", canary("redis-wrong"))):
            body = {
                "connection_id": conn_id,
                "conn_type": "redis",
                "host": "127.0.0.1",
                "port": redis.port,
                "password": secret,
            }
            stack.api("POST", "/api/v2/connections", body)
        listed = {
            c["connection_id"]: c for c in stack.api("GET", "/api/v2/connections?limit=100")["connections"]
        }
        good = stack.api("POST", "/api/v2/connections/test", ui_test_body(listed["redis_default"]))
        bad = stack.api("POST", "/api/v2/connections/test", ui_test_body(listed["redis_wrong"]))
        for conn_id in ("redis_default", "redis_wrong"):
            stack.api("DELETE", f"/api/v2/connections/{conn_id}")
    assert good["status"] is True, good
    assert f"at 127.0.0.1:{redis.port} (db 0) answered PING." in good["message"]
    assert bad["status"] is False and "refused the credentials" in bad["message"], bad
    assert listed["redis_default"]["password"] == "***"
    assert password not in json.dumps([listed, good, bad])


def test_the_airflow_api_connection_signs_in(api):
    """docs/sync.md's ``airflow_api_default``: its type is in the UI's list of types, and its Test
    signs in to the api-server (this one lets everybody in as admin, so no login is needed)."""
    stack, _ = api
    meta = {h["connection_type"]: h for h in stack.api("GET", "/ui/connections/hook_meta")}
    assert meta["airflowapi"]["hook_name"] == "Airflow REST API"
    assert meta["airflowapi"]["standard_fields"]["host"]["title"] == "API server URL"
    body = {"connection_id": "airflow_api_default", "conn_type": "airflowapi", "host": stack.url}
    stack.api("POST", "/api/v2/connections", body)
    listed = {c["connection_id"]: c for c in stack.api("GET", "/api/v2/connections?limit=100")["connections"]}
    tested = stack.api("POST", "/api/v2/connections/test", ui_test_body(listed["airflow_api_default"]))
    stack.api("DELETE", "/api/v2/connections/airflow_api_default")
    assert tested == {
        "status": True,
        "message": f"Airflow 3.3.2 at {stack.url} accepted the credentials "
        "(no login: an api-server where everyone is admin).",
    }
