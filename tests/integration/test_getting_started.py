"""docs/getting-started.md, steps 1 to 3, followed as written (marker ``getting_started``).

The commands, the window and the expected output are read from the page itself, so the page and this
test cannot drift apart:

1. ``make ui`` (the command of step 1's code block, after the ``git clone`` of this repository's
   URL) runs as a subprocess in the repository, with ``UI_DIR`` and ``UI_PORT`` (the page's options)
   pointing at a temp directory and a free port; the test waits for the URL and login it prints;
2. it logs in through the REST API (``POST /auth/token``) with that login (a wrong password is
   refused), finds the two documented connections, unpauses ``wonderware_backfill`` and triggers it
   as the Trigger form does, with the page's window typed into the pickers (``YYYY/MM/DD`` and
   ``HH:mm`` in UTC, sent as the form sends them), and waits for the run to succeed;
3. ``make rows`` must print the table the page shows, which must be the historian's own count of
   that day;

then a Ctrl-C (SIGINT to the command's process group, as a terminal sends it) must stop every
process the command started, and embedded ClickHouse, read directly, must hold that day only.

It starts a whole Airflow (scheduler, api-server, dag-processor, triggerer) once: minutes on a busy
two-core machine, hence the generous timeouts; it polls, and never sleeps for a fixed time.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from datetime import datetime, timezone
from importlib.metadata import metadata
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
import requests

from airflow_backfill_provider.testing.counts import clickhouse_counts, source_days
from airflow_backfill_provider.testing.services import free_port

pytestmark = [pytest.mark.getting_started, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "getting-started.md"
DAG_ID = "wonderware_backfill"
# Settings of the caller (the suite's own Airflow, DAG settings other test folders set) would not be
# in a newcomer's shell; MAKE* would make the subprocess a sub-make of a calling make.
NOT_INHERITED = ("AIRFLOW", "WONDERWARE_", "MISSING_WORKFLOW_", "K8S_", "MAKE", "MFLAGS")
READY_TIMEOUT = 1200  # a first start may install .venv first
RUN_TIMEOUT = 1200
STOP_TIMEOUT = 300


# -- reading the page ------------------------------------------------------------------------------


def _sections() -> dict[str, str]:
    """The page's ``## `` sections by their number ("1", "2", ...)."""
    parts = re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]
    return {m.group(1): part for part in parts if (m := re.match(r"(\d+)\.", part))}


def _blocks(section: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", section, flags=re.S)


def _picker_instant(date: str, hhmm: str) -> str:
    """What the form's date-time picker sends for a date and time typed in UTC."""
    typed = datetime.strptime(f"{date} {hhmm}", "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)
    return typed.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_the_page_is_one_path_from_a_clone():
    """Without starting anything: the page names this repository's URL, Python 3.11 (the Makefile's)
    and `make ui` before any `airflow` command, `airflow db migrate` before `connections add`."""
    text = PAGE.read_text()
    source = dict(e.split(", ", 1) for e in metadata("airflow-backfill-provider").get_all("Project-URL"))
    clone = _blocks(_sections()["1"])[0].splitlines()
    assert clone[0] == f"git clone {source['Source']}", clone
    assert "-p 3.11" in (ROOT / "Makefile").read_text() and "Python 3.11" in text
    assert "3.10+" not in text
    assert text.index("make ui") < text.index("airflow connections add")
    assert text.index("airflow db migrate") < text.index("airflow connections add")


# -- following it ----------------------------------------------------------------------------------


class ProcessTree:
    """Every process under ``root`` seen so far, and the sessions they ran in: after a stop, none of
    them and nothing else in those sessions may be left (a zombie is gone: it only waits for its
    parent, or for init, to read its exit status)."""

    def __init__(self, root: subprocess.Popen) -> None:
        self.root = root
        self.seen: dict[int, float] = {}
        self.sessions: set[int] = {os.getsid(root.pid)}

    def snapshot(self) -> None:
        try:
            procs = [psutil.Process(self.root.pid), *psutil.Process(self.root.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                self.seen.setdefault(proc.pid, proc.create_time())
                self.sessions.add(os.getsid(proc.pid))
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        self.sessions.discard(os.getsid(0))  # never this test's own session

    def left(self) -> list[str]:
        left = []
        for proc in psutil.process_iter(["pid", "create_time", "status", "cmdline"]):
            try:
                ours = (
                    self.seen.get(proc.pid) == proc.info["create_time"]
                    or os.getsid(proc.pid) in self.sessions
                )
            except ProcessLookupError:
                continue
            if ours and proc.info["status"] != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:150]}")
        return left

    def kill_all(self) -> None:
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getsid(proc.pid) in self.sessions:
                    proc.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass


def _wait_for_login(command: subprocess.Popen, log: Path, tree: ProcessTree) -> tuple[str, str, str]:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        tree.snapshot()
        text = log.read_text(errors="replace")
        url = re.search(r"^\s+UI:\s+(http://\S+)\s*$", text, re.M)
        login = re.search(r"^\s+Login:\s+(\S+) / (\S+)\s*$", text, re.M)
        if url and login:
            return url.group(1), login.group(1), login.group(2)
        assert command.poll() is None, (
            f"the command exited ({command.returncode}) before it was ready:\n{text[-4000:]}"
        )
        assert time.monotonic() < deadline, f"no URL and login after {READY_TIMEOUT}s:\n{text[-4000:]}"
        time.sleep(1)


def _api(method: str, url: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, headers=headers, timeout=120, **kwargs)


def test_getting_started_from_make_ui_to_rows_and_ctrl_c(tmp_path):
    sections = _sections()
    step1 = [line for line in _blocks(sections["1"])[0].splitlines() if line.startswith("make ")]
    assert step1 == ["make ui"], f"step 1 should end with one `make ui`: {step1}"
    dates = re.search(
        r"\*Window start\*.*?Date `(\S+)` and Time `(\S+)`.*?\*Window end \(exclusive\)\*.*?"
        r"Date `(\S+)`, Time `(\S+)`",
        sections["2"],
        re.S,
    )
    assert dates, "step 2 should give the window as the picker's Date and Time"
    assert "**UTC" in sections["2"], "step 2 should set the UI's time zone to UTC first"
    window_start, window_end = _picker_instant(*dates.group(1, 2)), _picker_instant(*dates.group(3, 4))
    day = window_start[:10]
    step3_command, step3_output = _blocks(sections["3"])[:2]
    assert step3_command.strip() == "make rows"
    expected_table = step3_output.strip().splitlines()[1:]  # the first line names the user's directory

    ui_dir = tmp_path / "ui"
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    env.update(UI_DIR=str(ui_dir), UI_PORT=str(free_port()))
    log = tmp_path / "make-ui.log"
    with log.open("w") as out:
        command = subprocess.Popen(
            shlex.split(step1[0]),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree = ProcessTree(command)
    try:
        url, user, password = _wait_for_login(command, log, tree)

        # Step 1: the printed login is a real one.
        assert (
            _api("POST", f"{url}/auth/token", json={"username": user, "password": "wrong"}).status_code == 401
        )
        answer = _api("POST", f"{url}/auth/token", json={"username": user, "password": password})
        assert answer.status_code == 201, answer.text
        token = answer.json()["access_token"]
        connections = _api("GET", f"{url}/api/v2/connections?limit=100", token).json()["connections"]
        assert {c["connection_id"]: c["conn_type"] for c in connections} == {
            "wonderware_default": "wonderware",
            "clickhouse_default": "chdb",
        }
        assert _api("GET", f"{url}/api/v2/dags/{DAG_ID}", token).json()["is_paused"], (
            "a new DAG starts paused"
        )

        # Step 2: what the Trigger form sends ("Unpause ... on trigger" ticked, the window picked).
        answer = _api("PATCH", f"{url}/api/v2/dags/{DAG_ID}", token, json={"is_paused": False})
        assert answer.status_code == 200, answer.text
        body = {
            "logical_date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "data_interval_start": None,
            "data_interval_end": None,
            "conf": {"range_start": window_start, "range_end": window_end},
        }
        answer = _api("POST", f"{url}/api/v2/dags/{DAG_ID}/dagRuns", token, json=body)
        assert answer.status_code == 200, answer.text
        run_path = f"{url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(answer.json()['dag_run_id'], safe='')}"
        deadline = time.monotonic() + RUN_TIMEOUT
        while (run := _api("GET", run_path, token).json())["state"] not in ("success", "failed"):
            tree.snapshot()
            assert command.poll() is None, f"make ui exited during the run:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the run did not finish in {RUN_TIMEOUT}s: {run}"
            time.sleep(2)
        tasks = _api("GET", f"{run_path}/taskInstances?limit=100", token).json()["task_instances"]
        states = sorted((t["task_id"], t["map_index"], t["state"]) for t in tasks)
        assert run["state"] == "success", f"the run failed: {states}; logs in {ui_dir}/airflow"

        # Step 3: `make rows` prints the page's table, which is the historian's count of the day.
        rows = subprocess.run(
            shlex.split(step3_command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert rows.returncode == 0, rows.stderr[-3000:]
        lines = rows.stdout.strip().splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("WonderwareHistory in "))
        assert str(ui_dir / "clickhouse") in lines[header]
        assert lines[header + 1 :] == expected_table, f"make rows printed:\n{rows.stdout}"
        source = source_days(f"sqlite:///{ui_dir / 'historian.db'}")
        assert f"{day} {source[day]:,}".split() == expected_table[1].split(), (source, expected_table)

        # Ctrl-C: the terminal signals the whole foreground process group.
        tree.snapshot()
        assert command.poll() is None
        os.killpg(command.pid, signal.SIGINT)
        try:
            command.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make ui still running {STOP_TIMEOUT}s after Ctrl-C:\n{log.read_text()[-3000:]}")
        output = log.read_text()
        assert "Stopped: no process of this Airflow is left." in output, output[-3000:]
        assert len(tree.seen) >= 6, f"fewer processes than components were seen: {tree.seen}"
        assert tree.left() == [], "processes left after Ctrl-C"
        # Read directly, not through the provider: only the triggered day was loaded (the scheduled
        # run that unpausing made loaded nothing).
        assert clickhouse_counts(ui_dir / "clickhouse", by="day") == {day: source[day]}
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
        tree.kill_all()
