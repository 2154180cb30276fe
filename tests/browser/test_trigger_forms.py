"""The Trigger form and the Dag Docs panel of each DAG, in the real Airflow UI (Chromium headless).

What a new user sees first: every Param under a human title (not its snake_case name), a value
the form can check rejected in the form with the reason next to the field, and Dag Docs that render
as clean Markdown and link to the project's docs. Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata

import pytest

from airflow_backfill_provider.testing.browser import SNAKE_CASE, AirflowUI

DAGS = ("wonderware_backfill", "missing_workflow_backfill")
# The explicit-range Params of each DAG: ISO 8601 date-times.
DATE_PARAMS = {"wonderware_backfill": "range_start", "missing_workflow_backfill": "interval_start"}


def _source_url() -> str:
    urls = dict(
        entry.split(",", 1) for entry in metadata("airflow-backfill-provider").get_all("Project-URL") or []
    )
    return urls["Source"].strip()


def _title(stack, dag_id: str, key: str) -> str:
    return stack.api("GET", f"/api/v2/dags/{dag_id}/details")["params"][key]["schema"].get("title") or key


@pytest.mark.parametrize("dag_id", DAGS)
def test_trigger_form_shows_human_titles(ui: AirflowUI, airflow_ui_stack, dag_id):
    params = airflow_ui_stack.api("GET", f"/api/v2/dags/{dag_id}/details")["params"]
    dialog = ui.open_trigger_form(dag_id)
    ui.shot("trigger-form")

    rows = ui.param_rows(dialog).all()
    labels = [ui.row_label(row) for row in rows]
    assert len(rows) == len(params), f"{dag_id}: {len(params)} Params, {len(rows)} form rows: {labels}"
    snake = [label for label in labels if label in params or SNAKE_CASE.match(label)]
    assert not snake, f"{dag_id}: the form labels these Params by their snake_case names: {snake}"
    for row, label in zip(rows, labels, strict=True):
        help_text = " ".join(row.locator('[data-part="helper-text"]').all_inner_texts()).strip()
        assert help_text, f"{dag_id}: the Param titled {label!r} has no description in the form"
    for key, param in params.items():
        title = (param.get("schema") or {}).get("title")
        assert title, f"{dag_id}: Param {key!r} has no title in its schema (the form falls back to the name)"
        assert title in labels, (
            f"{dag_id}: Param {key!r}'s title {title!r} is not a label of the form: {labels}"
        )


def test_bad_chunk_window_is_rejected_in_the_form(ui: AirflowUI):
    dialog = ui.open_trigger_form("wonderware_backfill")
    row = ui.param_row(dialog, "chunk_window")
    field = row.locator("input, textarea").first
    field.fill("6 hours")
    field.blur()
    reason = ui.row_error(row)
    ui.shot("chunk-window-error")
    assert reason, "a chunk_window of '6 hours' shows no reason next to the field"
    assert re.search(r"invalid|must|format|duration|e\.g\.|example", reason, re.I), reason
    assert dialog.get_by_role("button", name="Trigger", exact=True).is_disabled(), (
        "the Trigger button stays enabled with chunk_window '6 hours'"
    )


@pytest.mark.parametrize("dag_id", DAGS)
def test_non_iso_date_is_rejected_in_the_form(ui: AirflowUI, airflow_ui_stack, dag_id):
    key = DATE_PARAMS[dag_id]
    dialog = ui.open_trigger_form(dag_id)
    row = ui.param_row(dialog, title=_title(airflow_ui_stack, dag_id, key))
    picker = row.get_by_test_id("datetime-input")
    if picker.count():
        # The form's date-time input: a picker whose Date box takes typed text and checks it.
        picker.click()
        popover = ui.page.locator('[data-scope="popover"][data-part="content"][data-state="open"]')
        date = popover.get_by_placeholder(re.compile("YYYY"))
        date.click()
        date.press_sequentially("yesterday")
        date.press("Tab")
        reasons = [
            line for line in popover.inner_text().splitlines() if re.search(r"invalid|format", line, re.I)
        ]
        ui.shot("date-error")
        assert reasons, f"{dag_id}: 'yesterday' in {key}'s date box shows no reason next to it"
        ui.page.keyboard.press("Escape")
        assert "yesterday" not in picker.inner_text(), f"{dag_id}: {key} took 'yesterday' as its value"
    else:
        # A free-text field: it must say why the value is refused, and refuse to trigger.
        field = row.locator("input, textarea").first
        field.fill("yesterday")
        field.blur()
        reason = ui.row_error(row)
        ui.shot("date-error")
        assert reason, f"{dag_id}: 'yesterday' for {key} shows no reason next to the field"
        assert re.search(r"invalid|must|format|ISO|date", reason, re.I), reason
        assert dialog.get_by_role("button", name="Trigger", exact=True).is_disabled(), (
            f"{dag_id}: Trigger stays enabled with a non-ISO {key}"
        )


@pytest.mark.parametrize("dag_id", DAGS)
def test_dag_docs_render_as_markdown_and_link_to_the_docs(ui: AirflowUI, dag_id):
    dialog = ui.open_dag_docs(dag_id)
    ui.shot("dag-docs")
    text = dialog.inner_text()
    garbled = [line for line in text.splitlines() if re.fullmatch(r"\s*[=|:\- +]{4,}\s*", line)]
    assert not garbled, f"{dag_id}: Dag Docs show raw Markdown/RST rules: {garbled}"
    hrefs = dialog.locator("a").evaluate_all("links => links.map(a => a.href)")
    docs = f"{_source_url()}/blob/main/docs/"
    assert any(h.startswith(docs) for h in hrefs), f"{dag_id}: no link to {docs}… in the Dag Docs: {hrefs}"
    broken = [h for h in hrefs if h.startswith(ui.base_url)]
    assert not broken, f"{dag_id}: Dag Docs links resolve into the Airflow UI (relative links): {broken}"
