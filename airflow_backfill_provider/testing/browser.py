"""Driving the real Airflow UI from tests: Debian's Chromium headless through Playwright's Python package.

Playwright's own browsers are never installed (``playwright install`` downloads them and fails
here): :func:`launch_chromium` starts ``/usr/bin/chromium`` (``apt-get install chromium``, done by
``scripts/system-deps.sh``) through ``executable_path``. :class:`AirflowUI` is a page object for the
few Airflow 3.3 pages the browser tests use; its selectors are the ones the UI's own components
render (``element_<param>`` names in the Trigger form, ``aria-label`` on the connection buttons,
Chakra's ``data-part="error-text"`` next to a field that failed validation).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright, Response

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that talks to the outside: no sync, no component updates, no QUIC probes.
# --no-sandbox because the tests run as root, where Chromium's sandbox refuses to start.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SNAKE_CASE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


def chromium_path() -> str:
    """The system Chromium, or a clear error saying how to install it."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        raise RuntimeError(
            f"Chromium is not installed at {CHROMIUM}: run `make system-deps` (apt-get install chromium). "
            "Never `playwright install`: it downloads browsers, which fails here."
        )
    return found


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))


@dataclass
class AirflowUI:
    """One browser page on the Airflow UI at ``base_url``, saving a screenshot per page visited to
    ``screenshots`` and recording every API answer the browser received (for secret checks)."""

    page: Page
    base_url: str
    screenshots: Path
    prefix: str
    bodies: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self.page.set_default_timeout(30_000)
        self.page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if "/api/" in response.url or "/ui/" in response.url:
            try:
                self.bodies.append((response.url, response.text()))
            except Exception:  # noqa: BLE001 - a redirect or an aborted request has no body
                pass

    def shot(self, name: str) -> Path:
        path = self.screenshots / f"{self.prefix}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def goto(self, path: str, ready_text: str | None = None) -> None:
        self.page.goto(f"{self.base_url}{path}")
        if ready_text:
            self.page.get_by_text(ready_text).first.wait_for()

    # -- DAG pages -------------------------------------------------------------------------------

    def open_trigger_form(self, dag_id: str) -> Locator:
        """The Trigger dialog of ``dag_id`` (single run)."""
        self.goto(f"/dags/{dag_id}")
        self.page.get_by_role("button", name="Trigger Dag").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text("Advanced Options").wait_for()
        dialog.locator('[data-scope="accordion"][data-part="item"]').first.wait_for()
        return dialog

    @staticmethod
    def param_rows(dialog: Locator) -> Locator:
        """Every form row of the Params, in all sections, shown or collapsed (the "Advanced
        Options" section holds the run's own settings, not Params)."""
        sections = dialog.locator('[data-scope="accordion"][data-part="item"]').filter(
            has_not_text="Advanced Options"
        )
        return sections.locator('[data-scope="field"][data-part="root"]')

    def param_row(self, dialog: Locator, key: str | None = None, *, title: str | None = None) -> Locator:
        """The row of one Param, found by its key (the ``element_<key>`` its input carries) or, for
        inputs that carry none (the date-time picker), by its title; its section opened (the form
        shows one section at a time)."""
        page = dialog.page
        if key is not None:
            inner = page.locator(f'[name="element_{key}"], [id="element_{key}"], [id$=":element_{key}"]')
        else:
            inner = page.locator(
                '[data-part="label"]', has_text=re.compile(rf"^\s*{re.escape(title)}\s*\*?\s*$")
            )
        row = page.locator('[data-scope="field"][data-part="root"]').filter(has=inner)
        item = dialog.locator('[data-scope="accordion"][data-part="item"]').filter(has=row)
        row = item.locator('[data-scope="field"][data-part="root"]').filter(has=inner)
        trigger = item.locator('[data-part="item-trigger"]').first
        if trigger.get_attribute("aria-expanded") == "false":
            trigger.click()
            trigger.and_(self.page.locator('[aria-expanded="true"]')).wait_for()
        row.first.wait_for()
        return row.first

    @staticmethod
    def row_label(row: Locator) -> str:
        """The label's own text, without the required-field marker."""
        return row.locator('[data-part="label"]').first.evaluate(
            """label => Array.from(label.childNodes)
                .filter(n => !(n.classList && n.classList.contains("chakra-field__requiredIndicator")))
                .map(n => n.textContent).join("").trim()"""
        )

    @staticmethod
    def row_error(row: Locator) -> str:
        """The validation message shown next to the field ('' when none is shown)."""
        errors = row.locator('[data-part="error-text"]')
        return " ".join(t.strip() for t in errors.all_inner_texts()).strip()

    @staticmethod
    def marked_required(row: Locator) -> bool:
        """Whether the form marks the row's field required (the red asterisk after its label)."""
        return row.locator(".chakra-field__requiredIndicator").count() > 0

    def set_date_time(self, dialog: Locator, title: str, date: str, time: str) -> str:
        """Type ``date`` (``YYYY/MM/DD``) and ``time`` (``HH:mm``) into the date-time picker of the Param
        titled ``title``, as a person does; return what the field then shows."""
        picker = self.param_row(dialog, title=title).get_by_test_id("datetime-input")
        picker.click()
        popover = self.page.locator('[data-scope="popover"][data-part="content"][data-state="open"]')
        for placeholder, text in (("YYYY/MM/DD", date), ("HH:mm", time)):
            box = popover.get_by_placeholder(placeholder)
            box.click()
            box.press_sequentially(text)
            box.press("Tab")
        self.page.keyboard.press("Escape")
        popover.wait_for(state="detached")
        return picker.inner_text()

    def trigger(self, dialog: Locator, dag_id: str, *, unpause: bool = False) -> Response:
        """Press the dialog's Trigger button; return the api-server's answer to the trigger.

        The form of a paused DAG offers "Unpause <dag> on trigger", ticked, and unpauses the DAG
        when Trigger is pressed, whatever the answer: untick it unless ``unpause``.
        """
        name = f"Unpause {dag_id} on trigger"
        box = dialog.get_by_role("checkbox", name=name)
        if box.count() and box.is_checked() != unpause:
            dialog.get_by_text(name, exact=True).click()  # the box's drawn control takes the click
            assert box.is_checked() == unpause, f"{name!r} did not change"
        with self.page.expect_response(
            lambda r: r.url.endswith(f"/dags/{dag_id}/dagRuns") and r.request.method == "POST"
        ) as answer:
            dialog.get_by_role("button", name="Trigger", exact=True).click()
        return answer.value

    @staticmethod
    def dialog_error(dialog: Locator) -> str:
        """The error the dialog shows after a refused request (its alert box), waiting for it."""
        alert = dialog.get_by_test_id("error-alert").first
        alert.wait_for()
        return alert.inner_text()

    def open_dag_docs(self, dag_id: str) -> Locator:
        self.goto(f"/dags/{dag_id}")
        self.page.get_by_role("button", name="Dag Docs").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text("Dag Documentation").wait_for()
        return dialog

    # -- connections -----------------------------------------------------------------------------

    def open_connections(self, first_id: str) -> None:
        self.goto("/connections", ready_text=first_id)

    def connection_row(self, conn_id: str) -> Locator:
        cell = self.page.locator(
            '[data-testid="table-cell-connection_id"]', has_text=re.compile(f"^{conn_id}$")
        )
        return self.page.get_by_role("row").filter(has=cell)

    def test_connection(self, conn_id: str) -> tuple[int, dict | str, str]:
        """Press the row's Test button: (HTTP status, JSON answer, text of the toast it showed)."""
        toasts = self.page.locator('[data-scope="toast"][data-part="root"]')
        before = toasts.count()
        with self.page.expect_response(lambda r: r.url.endswith("/connections/test")) as answer:
            self.connection_row(conn_id).get_by_role("button", name="Test Connection").click()
        response = answer.value
        try:
            body: dict | str = response.json()
        except Exception:  # noqa: BLE001 - keep whatever the server said
            body = response.text()
        toasts.nth(before).wait_for()
        return response.status, body, toasts.nth(before).inner_text()

    def open_edit_connection(self, conn_id: str) -> Locator:
        self.connection_row(conn_id).get_by_role("button", name="Edit Connection").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_text("Extra Fields JSON").wait_for()
        return dialog

    def open_add_connection(self, hook_name: str) -> Locator:
        """The Add Connection dialog with the connection type shown as ``hook_name`` chosen."""
        self.page.get_by_role("button", name="Add Connection").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_role("combobox").fill(hook_name)
        dialog.get_by_role("option", name=hook_name, exact=True).click()
        dialog.get_by_text("Extra Fields JSON").wait_for()
        return dialog

    @staticmethod
    def expand(dialog: Locator, section: str) -> None:
        """Open a collapsed section (``Extra Fields``, ``Extra Fields JSON``) of a connection form."""
        trigger = dialog.get_by_role("button", name=section, exact=True)
        if trigger.count() == 0:
            trigger = dialog.get_by_text(section, exact=True)
        if trigger.first.get_attribute("aria-expanded") != "true":
            trigger.first.click()

    @staticmethod
    def extra_json_text(dialog: Locator) -> str:
        """What the Extra Fields JSON editor shows (Monaco renders its lines as text)."""
        editor = dialog.locator(".monaco-editor .view-lines").first
        editor.wait_for()
        return editor.inner_text()

    def visible_text_and_values(self) -> str:
        """All text on the page plus the values of every input and text area (what a user could
        read or copy out of the page)."""
        values = self.page.evaluate(
            "() => Array.from(document.querySelectorAll('input, textarea')).map(e => e.value).join('\\n')"
        )
        return self.page.inner_text("body") + "\n" + values
