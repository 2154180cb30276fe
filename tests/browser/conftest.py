"""One real Airflow for every browser test: ``airflow api-server`` (UI, REST and execution API) and
the scheduler, in an isolated AIRFLOW_HOME, driven by Debian's Chromium headless through Playwright.

Start-up takes about half a minute, so the stack, its services (a SQLite historian made by the
simulator, an embedded ClickHouse directory, a Temporal dev server) and the browser are
session-scoped; each test gets its own page. The DAGs run with their default settings:
no ``WONDERWARE_BACKFILL_*`` or ``MISSING_WORKFLOW_BACKFILL_*`` variable and no ``AIRFLOW_CONN_*``
of the caller reaches the stack, and the connections are the documented ones
(:mod:`airflow_backfill_provider.testing.ui_connections`), stored in the metadata DB through the
REST API as a user's would be. ``test_unpause_dry_run.py`` unpauses and triggers
``wonderware_backfill``: its name sorts it after the tests that want the DAGs as deployed.

Screenshots, one per page a test visits, go to ``test-artifacts/screenshots/`` at the repository
root (git-ignored), named ``<test>-<page>.png``.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_backfill_provider.testing.browser import AirflowUI, launch_chromium
from airflow_backfill_provider.testing.services import free_port, redis_server, temporal_dev_server
from airflow_backfill_provider.testing.stack import AirflowStack, ui_env
from airflow_backfill_provider.testing.ui_connections import canary, documented_connections

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Deployment settings and connections of the caller (other test folders set some) would hide the
# defaults these tests are about.
_NOT_INHERITED = (
    "AIRFLOW_CONN_",
    "WONDERWARE_",
    "MISSING_WORKFLOW_",
    "CLICKHOUSE_CONN_ID",
    "TEMPORAL_CONN_ID",
)


@pytest.fixture(scope="session")
def browser_services(tmp_path_factory):
    """A SQLite historian (the demo's kind) around today, an embedded ClickHouse path, a Temporal
    dev server, a Redis that asks for a password, and the documented connections pointing at them."""
    from airflow_backfill_provider.testing.simulator import SimulatorConfig, simulate

    root = tmp_path_factory.mktemp("browser")
    today = datetime.now(timezone.utc).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    historian_url = f"sqlite:///{root}/historian.db"
    simulate(
        historian_url,
        SimulatorConfig(start=today - timedelta(days=2), end=today + timedelta(days=1), tags=6, rate=900),
        replace=True,
    )
    closed_port = free_port()  # nothing listens there: the unreachable servers
    redis_password = canary("redis")
    with temporal_dev_server() as temporal_address, redis_server(password=redis_password) as redis:
        yield {
            "root": root,
            "chdb_path": root / "chdb",
            "closed_port": closed_port,
            "connections": documented_connections(
                historian_url=historian_url,
                chdb_path=str(root / "chdb"),
                temporal_address=temporal_address,
                closed_port=closed_port,
                redis_port=redis.port,
                redis_password=redis_password,
            ),
        }


@pytest.fixture(scope="session")
def airflow_ui_stack(browser_services):
    """The api-server (``--apps all``) and the scheduler, every user an admin, connection Test on."""
    stack = AirflowStack(
        home=browser_services["root"] / "airflow",
        dags_folder=DAGS_FOLDER,
        parallelism=2,
        apps="all",
        extra_env={**ui_env(), "AIRFLOW__CORE__UNIT_TEST_MODE": "False"},
    )
    for key in [k for k in stack.env if k.startswith(_NOT_INHERITED)]:
        del stack.env[key]
    stack.prepare(None)  # the DAGs stay paused, as a new deployment's do
    with stack.running():
        for connection in browser_services["connections"]:
            stack.api("POST", "/api/v2/connections", connection.rest_body())
        yield stack


@pytest.fixture(scope="session")
def screenshots():
    """The screenshots of an earlier session are cleared first, so the folder shows this session's
    pages only."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    return SCREENSHOTS


# Module scope: while Playwright's sync API is open it keeps an event loop running in the main
# thread, and every later asyncio.run() in the session (the trigger tests) would refuse to start.
@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser_context(chromium, screenshots):
    """One context per module: its HTTP cache spares each test a new download and parse of the
    UI's bundle (seconds per page on a busy 2-core machine)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def ui(request, browser_context, airflow_ui_stack):
    """A new page on the UI; a screenshot of it is kept when the test fails."""
    page = browser_context.new_page()
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    airflow_ui = AirflowUI(page=page, base_url=airflow_ui_stack.url, screenshots=SCREENSHOTS, prefix=prefix)
    try:
        yield airflow_ui
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            airflow_ui.shot("failed")
        page.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture(scope="session")
def connections(browser_services):
    return {c.conn_id: c for c in browser_services["connections"]}
