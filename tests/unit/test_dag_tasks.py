"""The DAGs' task logic, called directly: no DAG run, no scheduler, no database.

Airflow's Variable is the real one, fed through ``AIRFLOW_VAR_<NAME>`` environment variables.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_backfill_provider.tasks import missing_workflow_backfill as mwb
from airflow_backfill_provider.tasks import wonderware_backfill as wwb
from airflow_backfill_provider.tasks.runs import RunInfo, dry_run, require_triggered

UTC = timezone.utc
JAN1, JAN2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)
PLAN_PARAMS = {
    "range_start": None,
    "range_end": None,
    "chunk_window": "12h",
    "tag_group_size": 2,
    "batch_size": 1000,
    "dry_run": False,
}
SPEC = {
    "workflow_type": "T",
    "task_queue": "q",
    "id_template": "x-{key}-{interval_start:%Y%m%d}",
    "keys": ["a"],
}
VARIABLE = "unit_test_workflow_spec"


# --- wonderware_backfill: plan ---------------------------------------------------------------------


def test_plan_chunks_the_interval_and_records_when_it_planned():
    pushed: dict = {}
    chunks = wwb.plan(
        ["b", "a", "c"], PLAN_PARAMS, JAN1, JAN2, xcom_push=lambda key, value: pushed.update({key: value})
    )
    assert [(c["window_start"], c["tags"]) for c in chunks] == [
        ("2025-01-01T00:00:00+00:00", ["a", "b"]),
        ("2025-01-01T00:00:00+00:00", ["c"]),
        ("2025-01-01T12:00:00+00:00", ["a", "b"]),
        ("2025-01-01T12:00:00+00:00", ["c"]),
    ]
    assert all(c["batch_size"] == 1000 and c["dry_run"] is False for c in chunks)
    assert len({c["chunk_id"] for c in chunks}) == 4
    assert set(pushed) == {wwb.PLANNED_AT, wwb.WINDOW} and pushed[wwb.PLANNED_AT] > 0
    assert pushed[wwb.WINDOW] == ["2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"]


def test_plan_explicit_range_overrides_the_interval():
    params = {**PLAN_PARAMS, "range_start": "2025-03-01T00:00:00Z", "range_end": "2025-03-01T06:00:00Z"}
    chunks = wwb.plan(["a"], params, JAN1, JAN2, xcom_push=lambda **_: None)
    assert [(c["window_start"], c["window_end"]) for c in chunks] == [
        ("2025-03-01T00:00:00+00:00", "2025-03-01T06:00:00+00:00")
    ]


@pytest.mark.parametrize(
    "params, interval, message",
    [
        ({"range_start": "2025-01-01T00:00:00Z"}, (JAN1, JAN2), "Set both range_start and range_end"),
        ({}, (None, None), "no data interval"),
        ({}, (JAN1, JAN1), "interval timetable"),
        ({"tag_group_size": 0}, (JAN1, JAN2), "Invalid tag_group_size 0"),
        ({"chunk_window": "1s"}, (JAN1, JAN2), "more than the limit of 1024 mapped tasks"),
    ],
)
def test_plan_bad_input_fails_without_retry(params, interval, message):
    with pytest.raises(AirflowFailException, match=message):
        wwb.plan(["a"], {**PLAN_PARAMS, **params}, *interval, xcom_push=lambda **_: None)


# --- wonderware_backfill: finalize -----------------------------------------------------------------

ASSET = Asset(name="clickhouse_WonderwareHistory", uri="clickhouse://clickhouse_default/WonderwareHistory")
CHUNKS = [
    {"chunk_id": "c1", "tags": ["a", "b"]},
    {"chunk_id": "c2", "tags": ["c"]},
    {"chunk_id": "c3", "tags": ["a", "b"]},
]
WINDOW = [JAN1.isoformat(), JAN2.isoformat()]


def _finalize(results, *, dry_run=False, planned_at=None):
    event = OutletEventAccessors()[ASSET]
    summary = wwb.finalize(
        CHUNKS,
        results,
        {"dry_run": dry_run},
        planned_at=planned_at,
        window=WINDOW,
        asset_event=event,
    )
    return summary, event


def test_finalize_sums_the_chunks_and_describes_the_asset_event():
    results = [{"chunk_id": c["chunk_id"], "rows": 10, "seconds": 0.5} for c in CHUNKS]
    summary, event = _finalize(results)
    assert summary["chunks_total"] == summary["chunks_ok"] == 3
    assert (summary["chunks_failed"], summary["success_rate"], summary["rows"]) == (0, 1.0, 30)
    assert summary["transfer_seconds"] == 1.5 and summary["failed_chunk_ids"] == []
    assert event.extra == {
        "rows": 30,
        "chunks": 3,
        "window_start": "2025-01-01T00:00:00+00:00",
        "window_end": "2025-01-02T00:00:00+00:00",
    }
    assert (summary["window_start"], summary["window_end"]) == tuple(WINDOW)


def test_finalize_measures_from_planned_at():
    import time

    results = [{"chunk_id": c["chunk_id"], "rows": 100} for c in CHUNKS]
    summary, _ = _finalize(results, planned_at=time.time() - 10)
    assert 10 <= summary["duration_seconds"] < 60
    assert 0 < summary["rows_per_second"] <= 30
    # no planned_at (plan's XCom missing): the duration counts from now
    assert _finalize(results)[0]["duration_seconds"] < 5


def test_finalize_fails_the_run_naming_the_failed_chunks():
    results = [{"chunk_id": "c1", "rows": 5}, None, None]
    with pytest.raises(AirflowFailException) as err:
        _finalize(results)
    assert str(err.value) == (
        "2 of 3 chunks failed: ['c2', 'c3']. Re-run with `airflow backfill create ... "
        "--reprocess-behavior failed`, or clear the failed fetch_insert task instances."
    )


def test_finalize_skips_a_dry_run_without_an_asset_event():
    results = [{"chunk_id": c["chunk_id"], "rows": 0} for c in CHUNKS]
    event = OutletEventAccessors()[ASSET]
    with pytest.raises(AirflowSkipException, match="no asset event"):
        wwb.finalize(CHUNKS, results, {"dry_run": True}, planned_at=None, window=WINDOW, asset_event=event)
    assert event.extra == {}


def test_finalize_with_nothing_planned_is_a_success():
    event = OutletEventAccessors()[ASSET]
    summary = wwb.finalize([], None, {"dry_run": False}, planned_at=None, window=WINDOW, asset_event=event)
    assert (summary["chunks_total"], summary["success_rate"], event.extra["rows"]) == (0, 1.0, 0)


# --- missing_workflow_backfill: resolve_spec -------------------------------------------------------


@pytest.fixture
def spec_files(tmp_path):
    def write(name: str, content) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def _resolve(params, spec_file=None, run=None):
    return mwb.resolve_spec(params, spec_variable=VARIABLE, spec_file=spec_file, run=run)


def test_resolve_spec_source_order(monkeypatch, spec_files, caplog):
    caplog.set_level(logging.INFO, logger="airflow.task")
    param_file = spec_files("param.json", {**SPEC, "name": "from_param_file"})
    env_file = spec_files("env.json", {**SPEC, "name": "from_env_file"})
    monkeypatch.setenv(f"AIRFLOW_VAR_{VARIABLE.upper()}", json.dumps({**SPEC, "name": "from_variable"}))
    everything = {"spec": {**SPEC, "name": "from_param"}, "spec_file": param_file}

    assert _resolve(everything, env_file)["name"] == "from_param"
    assert _resolve({**everything, "spec": None}, env_file)["name"] == "from_param_file"
    assert _resolve({"spec": None, "spec_file": None}, env_file)["name"] == "from_variable"
    monkeypatch.delenv(f"AIRFLOW_VAR_{VARIABLE.upper()}")
    assert _resolve({}, env_file)["name"] == "from_env_file"
    assert [r.getMessage() for r in caplog.records if r.name == "airflow.task"] == [
        "Workflow spec from the 'spec' Param",
        f"Workflow spec from file {param_file}",
        f"Workflow spec from Variable {VARIABLE!r}",
        f"Workflow spec from file {env_file}",
    ]


def test_resolve_spec_keeps_a_list_of_specs_as_is(monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_VAR_{VARIABLE.upper()}", json.dumps([SPEC, {**SPEC, "name": "b"}]))
    assert _resolve({}) == [SPEC, {**SPEC, "name": "b"}]


def test_resolve_spec_without_any_source_fails_without_retry():
    with pytest.raises(AirflowFailException) as err:
        _resolve({"spec": None, "spec_file": None})
    assert str(err.value) == (
        "No workflow spec: pass the 'spec' or 'spec_file' Param, set the Variable "
        f"{VARIABLE!r}, or point MISSING_WORKFLOW_BACKFILL_SPEC_FILE at a JSON file."
    )


def test_resolve_spec_file_holding_null_is_no_spec(spec_files):
    with pytest.raises(AirflowFailException, match="No workflow spec"):
        _resolve({"spec_file": spec_files("null.json", "null")})


@pytest.mark.parametrize("content", [None, "{not json"])
def test_resolve_spec_unreadable_file_fails_without_retry(spec_files, tmp_path, content):
    path = str(tmp_path / "absent.json") if content is None else spec_files("bad.json", content)
    with pytest.raises(AirflowFailException, match=f"Cannot read the workflow spec from {path}: "):
        _resolve({"spec_file": path})


# --- missing_workflow_backfill: summary ------------------------------------------------------------


def _found(spec: str, **counts) -> dict:
    return {
        "spec": spec,
        "interval_start": "2026-01-01T00:00:00+00:00",
        "interval_end": "2026-01-02T00:00:00+00:00",
        "counts": counts,
    }


BACKFILLED = {
    "dry_run": False,
    "started": ["x-b-20260101-backfill-1"],
    "would_start": ["x-b-20260101-backfill-1"],
    "attached": [],
    "exhausted": ["x-c-20260101"],
    "recorded": 1,
}


def test_summary_counts_every_class_over_all_specs(caplog):
    caplog.set_level(logging.INFO, logger="airflow.task")
    found = [_found("reindex", completed=2, failed=1), _found("export", missing=3, failed=1)]
    result = mwb.summary(found, BACKFILLED, ti=None)  # both upstreams returned
    assert result["specs"] == ["reindex", "export"]
    assert result["counts"] == {
        "completed": 2, "running": 0, "running_too_long": 0, "failed": 2, "timed_out": 0,
        "terminated": 0, "canceled": 0, "missing": 3,
    }  # fmt: skip
    assert result["started"] == ["x-b-20260101-backfill-1"] and result["recorded"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "reindex [2026-01-01T00:00:00+00:00, 2026-01-02T00:00:00+00:00): completed=2  failed=1" in messages
    assert "Started 1 replacement(s): x-b-20260101-backfill-1" in messages
    assert "Attempts used up, not replaced: x-c-20260101" in messages


def test_summary_of_a_dry_run_says_what_it_would_start(caplog):
    caplog.set_level(logging.INFO, logger="airflow.task")
    result = mwb.summary([_found("reindex")], {**BACKFILLED, "dry_run": True, "started": []}, ti=None)
    assert result["dry_run"] is True and sum(result["counts"].values()) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "reindex [2026-01-01T00:00:00+00:00, 2026-01-02T00:00:00+00:00): no keys" in messages
    assert "Would start 1 replacement(s): x-b-20260101-backfill-1" in messages


class UpstreamStates:
    """The task instance's look-up of other tasks' states (``RuntimeTaskInstance.get_task_states``)."""

    dag_id, run_id = "missing_workflow_backfill", "scheduled__2026-01-02T00:00:00+00:00"

    def __init__(self, **states: str):
        self.states = states

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert (dag_id, run_ids) == (self.dag_id, [self.run_id])
        return {self.run_id: {t: self.states[t] for t in task_ids if t in self.states}}


@pytest.mark.parametrize(
    "found, backfilled, states, step",
    [
        (None, None, {"find_gaps": "failed", "backfill": "upstream_failed"}, "find_gaps failed"),
        (None, None, {"find_gaps": "upstream_failed"}, "find_gaps upstream_failed"),
        (
            [_found("reindex", missing=1)],
            None,
            {"find_gaps": "success", "backfill": "failed"},
            "backfill failed",
        ),
    ],
)
def test_summary_fails_the_run_naming_the_failed_step(found, backfilled, states, step):
    with pytest.raises(AirflowFailException) as err:
        mwb.summary(found, backfilled, UpstreamStates(**states))
    assert str(err.value).startswith(f"{step}, so there is nothing to summarize: see the log of ")


def test_summary_skips_only_when_the_steps_before_it_skipped():
    """A run with no spec skips resolve_spec, find_gaps and backfill: summary skips too, and the run
    is green with resolve_spec's reason on it, never a red run nor a green one hiding a failure."""
    with pytest.raises(AirflowSkipException, match="find_gaps was skipped"):
        mwb.summary(None, None, UpstreamStates(find_gaps="skipped", backfill="skipped"))


def test_a_scheduled_run_without_a_spec_skips_saying_why_and_others_fail():
    """Issue 17, item 10: unpausing with the default settings must not make a red run a day."""
    scheduled = RunInfo(run_type="scheduled", data_interval_start=JAN1, data_interval_end=JAN2)
    with pytest.raises(AirflowSkipException) as err:
        _resolve({"spec": None, "spec_file": None}, run=scheduled)
    assert str(err.value).startswith(
        "This scheduled run of [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00) checks nothing: "
        "No workflow spec: pass the 'spec' or 'spec_file' Param"
    )
    for run_type in ("manual", "backfill"):
        with pytest.raises(AirflowFailException, match="No workflow spec"):
            _resolve(
                {"spec": None, "spec_file": None},
                run=RunInfo(run_type=run_type, data_interval_start=JAN1, data_interval_end=JAN2),
            )


# --- run-type rules (issue 9) ----------------------------------------------------------------------

CHECK_PARAMS = {**PLAN_PARAMS, "chunk_window": "6h", "tag_group_size": 50}


def _run(run_type: str, **kw) -> RunInfo:
    interval = {"data_interval_start": JAN1, "data_interval_end": JAN2}
    return RunInfo(run_type=run_type, schedule="@daily", **{**interval, **kw})


def test_a_scheduled_run_without_a_start_date_loads_nothing_and_says_why():
    with pytest.raises(AirflowSkipException) as err:
        wwb.check_run(CHECK_PARAMS, _run("scheduled"), scheduled_loads=False)
    assert str(err.value).startswith(
        "Scheduled loads are off until WONDERWARE_BACKFILL_START_DATE is set: this scheduled run of "
        "[2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00) loads nothing. Load history with "
        "`airflow backfill create --dag-id wonderware_backfill"
    )
    # once a start date is set, scheduled runs load their interval; backfill and manual runs always do
    assert wwb.check_run(CHECK_PARAMS, _run("scheduled"), scheduled_loads=True) == (JAN1, JAN2)
    for run_type in ("backfill", "manual"):
        assert wwb.check_run(CHECK_PARAMS, _run(run_type), scheduled_loads=False) == (JAN1, JAN2)


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_an_explicit_range_in_a_scheduled_or_backfill_run_fails_at_once(run_type):
    params = {**CHECK_PARAMS, "range_start": "2025-03-01T00:00:00Z", "range_end": "2025-03-02T00:00:00Z"}
    with pytest.raises(AirflowFailException) as err:
        wwb.check_run(params, _run(run_type), scheduled_loads=True)
    assert str(err.value) == (
        f"range_start and range_end are for manual runs only, but this is a {run_type} run of "
        "[2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00): scheduled and backfill runs each cover "
        "their own data interval, and one window in every run of a backfill would load that window again "
        "and again. Leave range_start and range_end empty in the Backfill dialog (or drop them from "
        "--dag-run-conf); to load one explicit window, trigger a manual run with them."
    )


@pytest.mark.parametrize("run_type", ["manual", "operator_triggered"])
def test_an_explicit_range_in_a_triggered_run_is_its_window(run_type):
    params = {**CHECK_PARAMS, "range_start": "2025-03-01T00:00:00Z", "range_end": "2025-03-02T00:00:00Z"}
    window = wwb.check_run(params, _run(run_type), scheduled_loads=False)
    assert window == (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))


def test_a_run_triggered_without_a_logical_date_covers_the_last_complete_interval():
    run = _run(
        "manual",
        data_interval_start=None,
        data_interval_end=None,
        run_after=datetime(2025, 1, 2, 7, 30, tzinfo=UTC),
    )
    assert run.default_interval() == (JAN1, JAN2)
    assert wwb.check_run(CHECK_PARAMS, run, scheduled_loads=False) == (JAN1, JAN2)
    chunks = wwb.plan(
        ["a"], CHECK_PARAMS, None, None, xcom_push=lambda **_: None, default_interval=run.default_interval()
    )
    assert (chunks[0]["window_start"], chunks[-1]["window_end"]) == (JAN1.isoformat(), JAN2.isoformat())


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"range_start": "2025-01-02T00:00:00Z", "range_end": "2025-01-01T00:00:00Z"},
            "is not after range_start",
        ),
        ({"range_end": "2025-01-01T00:00:00Z"}, "Set both range_start and range_end"),
        ({"tag_group_size": 5000}, "Invalid tag_group_size 5000: at most 2000 tags per chunk"),
        ({"chunk_window": "6 hours"}, "Invalid chunk window '6 hours'"),
    ],
)
def test_check_run_refuses_bad_params_before_the_source_is_asked(params, message):
    with pytest.raises(AirflowFailException, match=message):
        wwb.check_run({**CHECK_PARAMS, **params}, _run("manual"), scheduled_loads=True)


def test_run_info_reads_an_airflow_dag_run():
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    dag_run = SimpleNamespace(
        run_type=DagRunType.BACKFILL,
        data_interval_start=JAN1,
        data_interval_end=JAN2,
        run_after=JAN2,
        conf=None,
    )
    run = RunInfo.of(dag_run, "@daily")
    assert (run.run_type, run.triggered, run.conf, run.interval()) == ("backfill", False, {}, (JAN1, JAN2))
    assert run.describe() == "backfill run of [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00)"


@pytest.mark.parametrize(
    "run_type, conf, param, expected",
    [
        ("manual", {}, True, True),  # the Param's default: a triggered run is a dry run
        ("manual", {"dry_run": False}, False, False),
        ("operator_triggered", {}, True, True),
        ("scheduled", {}, True, False),  # the Param's default does not reach scheduled runs
        ("backfill", {}, True, False),  # nor `airflow backfill create` without a conf
        ("backfill", {"dry_run": True}, True, True),  # a backfill asked to be dry is
        ("backfill", {"dry_run": "false"}, True, False),
    ],
)
def test_missing_workflow_dry_run_rule(run_type, conf, param, expected):
    assert dry_run(RunInfo(run_type=run_type, conf=conf), param) is expected


def test_missing_workflow_interval_params_are_for_manual_runs(monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_VAR_{VARIABLE.upper()}", json.dumps(SPEC))
    params = {"spec": None, "spec_file": None, "interval_start": "2026-01-01T00:00:00Z", "dry_run": True}
    with pytest.raises(
        AirflowFailException, match="interval_start is for manual runs only, but this is a backfill run"
    ):
        mwb.resolve_spec(params, spec_variable=VARIABLE, spec_file=None, run=_run("backfill"))
    assert mwb.resolve_spec(params, spec_variable=VARIABLE, spec_file=None, run=_run("manual")) == SPEC
    require_triggered({"interval_start": None}, ["interval_start"], _run("scheduled"))  # unset: fine


def test_resolve_spec_logs_the_runs_mode(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="airflow.task")
    monkeypatch.setenv(f"AIRFLOW_VAR_{VARIABLE.upper()}", json.dumps(SPEC))
    mwb.resolve_spec({"dry_run": True}, spec_variable=VARIABLE, spec_file=None, run=_run("manual"))
    mwb.resolve_spec({"dry_run": True}, spec_variable=VARIABLE, spec_file=None, run=_run("scheduled"))
    messages = [r.getMessage() for r in caplog.records if r.name == "airflow.task"]
    interval = "[2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00)"
    assert (
        f"Dry run (manual run of {interval}): replacements are reported, none started or recorded."
        in messages
    )
    assert f"Real run (scheduled run of {interval}): replacements will be started and recorded." in messages


def test_finalize_of_a_dry_run_reports_the_rows_it_would_load(caplog):
    caplog.set_level(logging.INFO, logger="airflow.task")
    results = [{"chunk_id": c["chunk_id"], "rows": 0, "source_rows": 7, "dry_run": True} for c in CHUNKS]
    event = OutletEventAccessors()[ASSET]
    with pytest.raises(AirflowSkipException) as err:
        wwb.finalize(CHUNKS, results, {"dry_run": True}, planned_at=None, window=WINDOW, asset_event=event)
    assert str(err.value) == (
        "Dry run of [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00): would load 21 rows of 3 tags "
        "in 3 chunks; nothing written, no asset event."
    )
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Backfill")]
    assert line.startswith(
        "Backfill DRY RUN of [2025-01-01T00:00:00+00:00, 2025-01-02T00:00:00+00:00): 3/3 chunks ok "
        "(success rate 100.0%), would load 21 rows, wrote nothing"
    )
