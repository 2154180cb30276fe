"""Connections in the real Airflow UI (Chromium headless): the Test button and secret masking.

The connections are the documented ones (``airflow_backfill_provider.testing.ui_connections``):
the SQLite historian and embedded ClickHouse of the demo, a Temporal dev server and the sync's Redis
(with a canary password), whose Test must succeed, and production shapes holding canary secrets
(SQL Server with a password, a historian URL with a password in it, Temporal Cloud with an API key
and an mTLS key, Kubernetes kube configs with a token and a client key) on a closed port, whose
Test must fail in words. No canary may reach the browser: not in a REST answer the UI reads, not in
the Extra Fields JSON view of the add and edit pages, not in the request the Test button sends.
Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re

import pytest

from airflow_backfill_provider.testing.browser import AirflowUI

WORKING = ("wonderware_default", "clickhouse_default", "temporal_default", "redis_default")
BROKEN = ("wonderware_sqlserver", "wonderware_postgres", "temporal_cloud", "kubernetes_default")
WITH_SECRETS = (
    "wonderware_postgres",
    "wonderware_url_password",
    "temporal_mtls",
    "temporal_mtls_files",
    "kubernetes_default",
    "kubernetes_object",
    "redis_default",
)


def _all_canaries(connections) -> list[str]:
    return [secret for c in connections.values() for secret in c.secrets]


@pytest.mark.parametrize("conn_id", WORKING)
def test_test_button_succeeds_for_documented_connection(ui: AirflowUI, connections, conn_id):
    assert connections[conn_id].test_succeeds
    ui.open_connections(conn_id)
    status, body, toast = ui.test_connection(conn_id)
    ui.shot("test-result")
    assert status == 200, f"Test of {conn_id}: HTTP {status} {body}"
    assert body["status"] is True, f"Test of {conn_id} failed: {body['message']}"
    assert "Successful" in toast, toast


@pytest.mark.parametrize("conn_id", BROKEN)
def test_test_button_fails_in_words_for_unreachable_connection(
    ui: AirflowUI, connections, browser_services, conn_id
):
    ui.open_connections(conn_id)
    status, body, toast = ui.test_connection(conn_id)
    ui.shot("test-result")
    assert status == 200, f"Test of {conn_id} gave HTTP {status} {body} instead of a test result"
    assert body["status"] is False
    message = body["message"]
    # In words: what failed and why, naming the endpoint (not just an HTTP status or a red icon).
    assert re.search(r"refused|unreachable|cannot connect|could not connect|unavailable", message, re.I), (
        message
    )
    port = str(browser_services["closed_port"])
    assert "127.0.0.1" in message or port in message, f"the reason names no endpoint: {message}"
    assert message.strip() in toast.replace("\n", " ") or message.strip()[:60] in toast, (
        f"the UI does not show the reason: toast {toast!r}, message {message!r}"
    )
    for secret in _all_canaries(connections):
        assert secret not in message and secret not in toast


def test_rest_answers_the_ui_reads_hold_no_canary(airflow_ui_stack, connections):
    canaries = _all_canaries(connections)
    answers = {"/api/v2/connections": airflow_ui_stack.api("GET", "/api/v2/connections?limit=100")}
    listed = {c["connection_id"] for c in answers["/api/v2/connections"]["connections"]}
    assert set(connections) <= listed
    for conn_id in connections:
        answers[f"/api/v2/connections/{conn_id}"] = airflow_ui_stack.api(
            "GET", f"/api/v2/connections/{conn_id}"
        )
    leaks = {path: [c for c in canaries if c in json.dumps(answer)] for path, answer in answers.items()}
    assert not {p: c for p, c in leaks.items() if c}, f"canary secrets in REST answers: {leaks}"


@pytest.mark.parametrize("conn_id", WITH_SECRETS)
def test_edit_page_extra_json_holds_no_canary(ui: AirflowUI, connections, conn_id):
    ui.open_connections(conn_id)
    dialog = ui.open_edit_connection(conn_id)
    ui.expand(dialog, "Extra Fields")
    ui.expand(dialog, "Extra Fields JSON")
    extra_json = ui.extra_json_text(dialog)
    ui.shot("edit")
    canaries = _all_canaries(connections)
    assert not [c for c in canaries if c in extra_json], f"Extra Fields JSON of {conn_id}: {extra_json}"
    assert not [c for c in canaries if c in ui.visible_text_and_values()], (
        f"a canary is on the edit page of {conn_id}"
    )
    received = [url for url, body in ui.bodies if any(c in body for c in canaries)]
    assert not received, f"the browser received a canary secret from {received}"


def test_add_page_extra_json_masks_a_typed_tls_key(ui: AirflowUI):
    """The documented place of an mTLS key typed into the add form (the Password field) is masked
    and stays out of the Extra Fields JSON view."""
    secret = "canary-typed-tls-key-0f9e8d7c"
    pem = f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----"
    ui.open_connections("temporal_default")
    dialog = ui.open_add_connection("Temporal")
    ui.expand(dialog, "Standard Fields")
    key_field = dialog.locator('[name="password"]')
    assert key_field.get_attribute("type") == "password", "the field for the TLS client key shows its value"
    key_field.fill(pem)
    ui.expand(dialog, "Extra Fields JSON")
    extra_json = ui.extra_json_text(dialog)
    ui.shot("add")
    assert secret not in extra_json, f"the Extra Fields JSON view shows the TLS key in clear: {extra_json}"


@pytest.mark.parametrize("conn_id", WITH_SECRETS)
def test_test_request_holds_no_canary(ui: AirflowUI, connections, conn_id):
    """The list's Test button posts the connection as the list received it: with *** in place of
    each secret, which the api-server swaps back for the stored value (so the documented Redis, with
    its password, still tests green)."""
    sent: list[tuple[str, str]] = []
    ui.page.on("request", lambda r: sent.append((r.url, r.post_data or "")) if "/api/" in r.url else None)
    ui.open_connections(conn_id)
    status, body, toast = ui.test_connection(conn_id)
    ui.shot("test-result")
    posted = [data for url, data in sent if url.endswith("/connections/test")]
    assert posted and json.loads(posted[-1])["connection_id"] == conn_id
    canaries = _all_canaries(connections)
    assert not [url for url, data in sent if any(c in data for c in canaries)], posted
    assert not [url for url, got in ui.bodies if any(c in got for c in canaries)]
    assert status == 200 and body["status"] is connections[conn_id].test_succeeds, body
    assert not [c for c in canaries if c in toast]


@pytest.fixture
def airflow_api_connection(airflow_ui_stack):
    """docs/sync.md's ``airflow_api_default``, pointing at this api-server (where everybody is an
    admin, so it needs no login)."""
    body = {"connection_id": "airflow_api_default", "conn_type": "airflowapi", "host": airflow_ui_stack.url}
    airflow_ui_stack.api("POST", "/api/v2/connections", body)
    try:
        yield "airflow_api_default"
    finally:
        airflow_ui_stack.api("DELETE", "/api/v2/connections/airflow_api_default")


def test_the_airflow_api_type_is_offered_and_its_test_signs_in(ui: AirflowUI, airflow_api_connection):
    ui.open_connections(airflow_api_connection)
    dialog = ui.open_add_connection("Airflow REST API")
    ui.expand(dialog, "Standard Fields")
    assert dialog.get_by_text("API server URL").count() > 0, "the host field keeps its generic title"
    ui.shot("add")
    ui.page.keyboard.press("Escape")
    status, body, toast = ui.test_connection(airflow_api_connection)
    ui.shot("test-result")
    assert status == 200 and body["status"] is True, body
    assert (
        body["message"].startswith("Airflow 3.3.2 at http://127.0.0.1:")
        and "accepted the credentials" in toast
    )
