"""`AirflowApiHook` against a real api-server (simple auth manager with a user and a password).

Login and Password are exchanged for a JWT at `POST /auth/token`; a wrong password is refused with a
message naming the connection; a Password alone is used as a ready JWT; asking twice for one run id
makes one run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_backfill_provider.hooks.airflow_api import AirflowApiError, AirflowApiHook
from airflow_backfill_provider.resilience import RetryPolicy
from airflow_backfill_provider.testing.stack import AirflowStack

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("api") / "airflow"
    stack = AirflowStack(home=home, dags_folder=DAGS_FOLDER, apps="all")
    stack.env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "backfill-bot:admin",
        }
    )
    stack.prepare(None)
    with stack.running():
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        yield stack, passwords["backfill-bot"]


def connect(monkeypatch, conn_id: str, **fields) -> AirflowApiHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))
    return AirflowApiHook(conn_id, retry=RetryPolicy(attempts=2, base_delay=0.1))


def test_login_and_password_get_a_token_and_one_run_per_request_id(api_server, monkeypatch):
    stack, password = api_server
    hook = connect(monkeypatch, "api_login", host=stack.url, login="backfill-bot", password=password)
    conf = {"tags": ["Boiler*Temp"], "dry_run": True}
    run, created = hook.trigger_dag_run(
        "wonderware_backfill", "retroactive__tags__0123456789abcdef", conf, note="asked"
    )
    assert created and run["dag_run_id"] == "retroactive__tags__0123456789abcdef" and run["conf"] == conf
    again, created = hook.trigger_dag_run("wonderware_backfill", "retroactive__tags__0123456789abcdef", conf)
    assert not created and again["dag_run_id"] == run["dag_run_id"]
    runs = hook.request("GET", "/api/v2/dags/wonderware_backfill/dagRuns")
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == ["retroactive__tags__0123456789abcdef"]
    assert runs["dag_runs"][0]["note"] == "asked"

    token = hook._authenticated().headers["Authorization"].removeprefix("Bearer ")
    bearer = connect(monkeypatch, "api_token", host=stack.url, password=token)  # a ready JWT
    assert bearer.request("GET", "/api/v2/dags/wonderware_backfill")["dag_id"] == "wonderware_backfill"


def test_a_wrong_password_is_refused_naming_the_connection(api_server, monkeypatch):
    stack, _ = api_server
    hook = connect(monkeypatch, "api_wrong", host=stack.url, login="backfill-bot", password="not-it")
    with pytest.raises(AirflowApiError) as err:
        hook.request("GET", "/api/v2/dags")
    message = str(err.value)
    assert (
        "Airflow API connection 'api_wrong'" in message and "/auth/token refused the credentials" in message
    )
    assert "not-it" not in message


def test_an_api_server_that_is_down_is_retried_then_reported(monkeypatch):
    from airflow_backfill_provider.exceptions import SourceUnavailableError
    from airflow_backfill_provider.testing.services import free_port

    hook = connect(monkeypatch, "api_down", host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceUnavailableError, match=r"Airflow API GET /auth/token|failed 2 times"):
        hook.request("GET", "/api/v2/dags")


# -- Test (the connection's Test button and `airflow connections test`) ------------------------------


def _tested(monkeypatch, conn_id: str, **fields) -> tuple[bool, str]:
    """Test of an ``airflowapi`` connection, found through its type as Airflow finds it."""
    from airflow.models.connection import Connection

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "airflowapi", **fields}))
    return Connection.get_connection_from_secrets(conn_id).test_connection()


def test_test_signs_in_and_names_the_server(api_server, monkeypatch):
    stack, password = api_server
    ok, message = _tested(monkeypatch, "api_test", host=stack.url, login="backfill-bot", password=password)
    assert ok, message
    assert message == f"Airflow 3.3.2 at {stack.url} accepted the credentials (login 'backfill-bot')."
    assert password not in message


def test_test_with_a_wrong_password_says_so(api_server, monkeypatch):
    stack, _ = api_server
    ok, message = _tested(
        monkeypatch, "api_test_wrong", host=stack.url, login="backfill-bot", password="not-it"
    )
    assert not ok
    assert (
        "/auth/token refused the credentials (HTTP 401" in message and "Set the Login and Password" in message
    )
    assert "not-it" not in message


def test_test_with_a_bad_token_says_so(api_server, monkeypatch):
    stack, _ = api_server
    ok, message = _tested(monkeypatch, "api_test_jwt", host=stack.url, password="not-a-jwt")
    assert not ok
    assert message.startswith(
        f"The Airflow API at {stack.url} refused to list DAGs with these credentials (HTTP 403: "
    )
    assert "Invalid JWT token" in message and "Use a user allowed to read and trigger DAGs" in message
    assert "not-a-jwt" not in message


def test_test_of_an_api_server_that_is_down_names_it_at_once(monkeypatch):
    from airflow_backfill_provider.testing.services import free_port

    url = f"http://127.0.0.1:{free_port()}"
    ok, message = _tested(monkeypatch, "api_test_down", host=url, login="backfill-bot", password="pw")
    assert not ok
    assert message == (
        f"Cannot connect to the Airflow API at {url}: Connection refused. Check the Host (with http:// "
        "or https://) and Port of the api-server."
    )
