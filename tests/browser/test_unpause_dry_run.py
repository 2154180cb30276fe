"""Safe by default, in the real UI: a dry run triggered from the form of a new deployment
(``wonderware_backfill`` paused, default settings, "Unpause on trigger" as the form offers it)
starts no load. Afterwards the REST API shows the manual dry run, no catchup of past intervals,
and at most the one scheduled run of the latest interval, which loaded nothing (its ``plan``
was skipped, no chunk ran); ClickHouse holds no row.

This module unpauses the DAG, so it runs after the other browser tests (file order).
Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from airflow_backfill_provider.testing.browser import AirflowUI
from airflow_backfill_provider.testing.counts import clickhouse_counts

DAG_ID = "wonderware_backfill"
FINISHED = ("success", "failed")


def _runs(stack) -> list[dict]:
    return stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1000")["dag_runs"]


def _task_states(stack, run_id: str) -> dict[str, list[str | None]]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=1000"
    tis = stack.api("GET", path)
    states: dict[str, list[str | None]] = {}
    for ti in tis["task_instances"]:
        states.setdefault(ti["task_id"], []).append(ti["state"])
    return states


def test_unpause_and_dry_run_start_no_load(ui: AirflowUI, airflow_ui_stack, browser_services):
    stack = airflow_ui_stack
    assert stack.api("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"], "a new deployment's DAG starts paused"
    assert _runs(stack) == []

    dialog = ui.open_trigger_form(DAG_ID)
    dry_run = ui.param_row(dialog, "dry_run").locator('input[type="checkbox"]')
    if not dry_run.is_checked():
        ui.param_row(dialog, "dry_run").locator('[data-part="control"]').click()
    assert dry_run.is_checked()
    unpause = dialog.get_by_role("checkbox", name=f"Unpause {DAG_ID} on trigger")
    if unpause.count() and not unpause.is_checked():
        unpause.check()  # the user unpauses with this trigger, whatever the form's default
    ui.shot("trigger-dry-run")
    with ui.page.expect_response(
        lambda r: r.url.endswith(f"/dags/{DAG_ID}/dagRuns") and r.request.method == "POST"
    ) as answer:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert answer.value.status in (200, 201), answer.value.text()
    # the form sends the unpause after the trigger's answer: give it a moment on a busy machine
    deadline = time.monotonic() + 20
    while stack.api("GET", f"/api/v2/dags/{DAG_ID}")["is_paused"]:
        assert time.monotonic() < deadline, "Unpause on trigger did not unpause"
        time.sleep(0.5)

    deadline = time.monotonic() + 300
    while True:
        stack.check_alive()
        runs = _runs(stack)
        manual = [r for r in runs if r["run_type"] == "manual"]
        if manual and all(r["state"] in FINISHED for r in runs):
            break
        assert time.monotonic() < deadline, f"the runs did not finish in 300 s: {runs}"
        time.sleep(2)
    # The scheduler has looped many times with the DAG unpaused: any catchup or scheduled run
    # would exist by now. Give it a few more loops anyway.
    time.sleep(5)
    ui.goto(f"/dags/{DAG_ID}/runs")
    ui.page.wait_for_load_state("networkidle")
    ui.shot("runs")

    runs = _runs(stack)
    summary = [(r["run_type"], r["state"], r["logical_date"], r["conf"]) for r in runs]
    manual = [r for r in runs if r["run_type"] == "manual"]
    other = [r for r in runs if r["run_type"] != "manual"]
    assert len(manual) == 1 and manual[0]["conf"].get("dry_run") is True, summary
    assert manual[0]["state"] == "success", f"the dry run failed: {summary}"
    assert all(r["run_type"] == "scheduled" for r in other), f"unpausing started a backfill: {summary}"
    assert len(other) <= 1, f"unpausing caught up {len(other)} intervals nobody asked for: {summary}"
    for run in other:
        states = _task_states(stack, run["dag_run_id"])
        assert states.get("plan") == ["skipped"], f"scheduled run {run['dag_run_id']} ran: {states}"
        assert not {"success", "running", "failed"} & set(states.get("fetch_insert", [])), (
            f"scheduled run {run['dag_run_id']} loaded chunks: {states}"
        )
    assert clickhouse_counts(browser_services["chdb_path"]) == {}, "rows were written into ClickHouse"

    # Each run's page says what it did (issue 17, items 12 and 15): the dry run what it would load,
    # a skipped scheduled run why. The listener's marker (a Markdown comment) is not shown.
    notes = _notes(stack, [r["dag_run_id"] for r in runs])
    assert notes[manual[0]["dag_run_id"]].startswith("Dry run of ["), notes
    for run in other:
        assert notes[run["dag_run_id"]].startswith("Scheduled loads are off until "), notes
    ui.goto(f"/dags/{DAG_ID}/runs/{quote(manual[0]['dag_run_id'], safe='')}")
    page_note = ui.page.get_by_text("Dry run of [").first
    page_note.wait_for(timeout=30_000)
    ui.shot("run-note")
    body = ui.page.inner_text("body")
    assert "would load" in body and "[//]" not in body and "airflow-backfill-provider)" not in body


def _notes(stack, run_ids: list[str]) -> dict[str, str]:
    """Each run's note, once the scheduler has written it (with the run's state, or a loop later)."""
    deadline = time.monotonic() + 60
    while True:
        notes = {r["dag_run_id"]: r["note"] for r in _runs(stack) if r["dag_run_id"] in run_ids}
        if all(notes.values()) or time.monotonic() > deadline:
            return notes
        time.sleep(1)
