"""The Trigger form and the Dag Docs panel of each DAG, in the real Airflow UI (Chromium headless).

What a new user sees first: every Param under a human title (not its snake_case name), a value
the form can check rejected in the form with the reason next to the field, a value it cannot check
(a duration of no length, a number out of range, a reversed window) refused in words when Trigger
is pressed, with no run created, a number kept as typed, no "required" mark on a Param that may
stay empty, and Dag Docs that render as clean Markdown and link to the project's docs.
Screenshots: ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from importlib.metadata import metadata

import pytest

from airflow_backfill_provider.testing.browser import SNAKE_CASE, AirflowUI
from airflow_backfill_provider.testing.stack import ApiError

DAGS = ("wonderware_backfill", "missing_workflow_backfill")
# The explicit-range Params of each DAG: ISO 8601 date-times.
DATE_PARAMS = {"wonderware_backfill": "range_start", "missing_workflow_backfill": "interval_start"}
WINDOWS = {
    "wonderware_backfill": ("range_start", "range_end"),
    "missing_workflow_backfill": ("interval_start", "interval_end"),
}
# What jsonschema's own refusal looks like: the rule's keyword, the schema dumped, the value.
SCHEMA_DUMP = re.compile(r"Failed validating|On instance|\{'|'type':")


def _source_url() -> str:
    urls = dict(
        entry.split(",", 1) for entry in metadata("airflow-backfill-provider").get_all("Project-URL") or []
    )
    return urls["Source"].strip()


def _title(stack, dag_id: str, key: str) -> str:
    return stack.api("GET", f"/api/v2/dags/{dag_id}/details")["params"][key]["schema"].get("title") or key


def _run_count(stack, dag_id: str) -> int:
    return stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=1")["total_entries"]


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


def test_a_chunk_window_of_no_length_is_refused_in_words(ui: AirflowUI, airflow_ui_stack):
    """'P' passes the form's own duration check (it reads as no time at all), so Airflow refuses
    it when Trigger is pressed: the dialog must say why in words, not show jsonschema's dump."""
    dag_id = "wonderware_backfill"
    runs = _run_count(airflow_ui_stack, dag_id)
    dialog = ui.open_trigger_form(dag_id)
    row = ui.param_row(dialog, "chunk_window")
    field = row.locator("input, textarea").first
    field.fill("P")
    field.blur()
    answer = ui.trigger(dialog, dag_id)
    error = ui.dialog_error(dialog)
    ui.shot("chunk-window-refused")
    assert answer.status == 400, f"chunk_window 'P' was not refused: HTTP {answer.status} {answer.text()}"
    assert not SCHEMA_DUMP.search(error), f"the dialog shows a schema dump, not words:\n{error}"
    assert re.search(r'Chunk window \[chunk_window\]: "P" is not an ISO 8601 duration with a length', error)
    assert "PT6H (6 hours)" in error, error
    assert _run_count(airflow_ui_stack, dag_id) == runs, "a run was created for a refused conf"


@pytest.mark.parametrize("typed", ["0", "5000"])
def test_an_out_of_range_number_is_kept_as_typed_and_refused_in_words(ui: AirflowUI, airflow_ui_stack, typed):
    dag_id = "wonderware_backfill"
    runs = _run_count(airflow_ui_stack, dag_id)
    dialog = ui.open_trigger_form(dag_id)
    row = ui.param_row(dialog, "tag_group_size")
    field = row.locator("input").first
    field.fill(typed)
    field.blur()
    shown = field.input_value()
    assert shown == typed, f"the form turned {typed} into {shown} without a word"
    answer = ui.trigger(dialog, dag_id)
    error = ui.dialog_error(dialog)
    ui.shot("number-refused")
    assert answer.status == 400, f"tag_group_size {typed} was not refused: HTTP {answer.status}"
    assert not SCHEMA_DUMP.search(error), f"the dialog shows a schema dump, not words:\n{error}"
    assert f"Tags per chunk [tag_group_size]: {typed} is out of range; it must be from 1 to 2,000" in error, (
        error
    )
    assert _run_count(airflow_ui_stack, dag_id) == runs, "a run was created for a refused conf"


@pytest.mark.parametrize("dag_id", DAGS)
def test_a_reversed_window_is_refused_before_a_run(ui: AirflowUI, airflow_ui_stack, dag_id):
    start, end = (_title(airflow_ui_stack, dag_id, key) for key in WINDOWS[dag_id])
    runs = _run_count(airflow_ui_stack, dag_id)
    dialog = ui.open_trigger_form(dag_id)
    assert "Jan 02, 2025" in ui.set_date_time(dialog, start, "2025/01/02", "00:00")
    assert "Jan 01, 2025" in ui.set_date_time(dialog, end, "2025/01/01", "00:00")
    answer = ui.trigger(dialog, dag_id)
    error = ui.dialog_error(dialog)
    ui.shot("reversed-window")
    assert answer.status == 400, f"{dag_id}: a reversed window was accepted (HTTP {answer.status})"
    assert (
        f"{end} [{WINDOWS[dag_id][1]}]" in error and f"is not after {start} [{WINDOWS[dag_id][0]}]" in error
    )
    assert "Swap them" in error, error
    assert _run_count(airflow_ui_stack, dag_id) == runs, f"{dag_id}: a run was created for a reversed window"


@pytest.mark.parametrize("dag_id", [*DAGS, "k8s_job_backfill"])
def test_params_that_may_stay_empty_are_not_marked_required(ui: AirflowUI, airflow_ui_stack, dag_id):
    """A Param whose default is empty (no value, an empty list) is optional: no red asterisk, and
    emptying its field again is no error."""
    params = airflow_ui_stack.api("GET", f"/api/v2/dags/{dag_id}/details")["params"]
    optional = {key for key, p in params.items() if p["value"] in (None, [], {}, "")}
    dialog = ui.open_trigger_form(dag_id)
    ui.shot("required-marks")
    marked = {ui.row_label(row) for row in ui.param_rows(dialog).all() if ui.marked_required(row)}
    wrong = sorted(key for key in optional if (params[key]["schema"].get("title") or key) in marked)
    assert not wrong, f"{dag_id}: optional Params marked required in the form: {wrong}"
    lists = [key for key in optional if "array" in str(params[key]["schema"].get("type"))]
    for key in lists:
        row = ui.param_row(dialog, key)
        field = row.locator("textarea").first
        field.fill("something")
        field.fill("")
        field.blur()
        assert not ui.row_error(row), f"{dag_id}: emptying {key} again shows {ui.row_error(row)!r}"
    assert dialog.get_by_role("button", name="Trigger", exact=True).is_enabled(), (
        f"{dag_id}: Trigger is disabled after emptying the optional lists {lists}"
    )


def test_a_backfill_with_an_explicit_window_is_refused_in_words(airflow_ui_stack):
    """The Backfill mode of the same dialog posts to /api/v2/backfills: every run of a backfill
    loads its own interval, so a window there is refused before any run exists."""
    body = {
        "dag_id": "wonderware_backfill",
        "from_date": "2025-01-01T00:00:00Z",
        "to_date": "2025-01-03T00:00:00Z",
        "dag_run_conf": {"range_start": "2025-01-01T00:00:00Z", "range_end": "2025-01-02T00:00:00Z"},
    }
    with pytest.raises(ApiError) as refused:
        airflow_ui_stack.api("POST", "/api/v2/backfills/dry_run", body)
    assert refused.value.status == 400, refused.value
    message = str(refused.value)
    assert "are for single manual runs only" in message and "Window start [range_start]" in message, message
    assert not SCHEMA_DUMP.search(message), message
