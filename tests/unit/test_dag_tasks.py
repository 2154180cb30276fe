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
    assert set(pushed) == {wwb.PLANNED_AT} and pushed[wwb.PLANNED_AT] > 0


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
CHUNKS = [{"chunk_id": "c1"}, {"chunk_id": "c2"}, {"chunk_id": "c3"}]


def _finalize(results, *, dry_run=False, planned_at=None):
    event = OutletEventAccessors()[ASSET]
    summary = wwb.finalize(
        CHUNKS,
        results,
        {"dry_run": dry_run},
        planned_at=planned_at,
        data_interval=(JAN1, JAN2),
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
        "data_interval_start": "2025-01-01 00:00:00+00:00",
        "data_interval_end": "2025-01-02 00:00:00+00:00",
    }


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
        wwb.finalize(
            CHUNKS, results, {"dry_run": True}, planned_at=None, data_interval=(JAN1, JAN2), asset_event=event
        )
    assert event.extra == {}


def test_finalize_with_nothing_planned_is_a_success():
    event = OutletEventAccessors()[ASSET]
    summary = wwb.finalize(
        [], None, {"dry_run": False}, planned_at=None, data_interval=(JAN1, JAN2), asset_event=event
    )
    assert (summary["chunks_total"], summary["success_rate"], event.extra["rows"]) == (0, 1.0, 0)


# --- missing_workflow_backfill: resolve_spec -------------------------------------------------------


@pytest.fixture
def spec_files(tmp_path):
    def write(name: str, content) -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


def _resolve(params, spec_file=None):
    return mwb.resolve_spec(params, spec_variable=VARIABLE, spec_file=spec_file)


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
    result = mwb.summary(found, BACKFILLED)
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
    result = mwb.summary([_found("reindex")], {**BACKFILLED, "dry_run": True, "started": []})
    assert result["dry_run"] is True and sum(result["counts"].values()) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "reindex [2026-01-01T00:00:00+00:00, 2026-01-02T00:00:00+00:00): no keys" in messages
    assert "Would start 1 replacement(s): x-b-20260101-backfill-1" in messages


@pytest.mark.parametrize(
    "found, backfilled, step",
    [(None, None, "find_gaps"), ([_found("reindex", missing=1)], None, "backfill")],
)
def test_summary_fails_the_run_naming_the_failed_step(found, backfilled, step):
    with pytest.raises(AirflowFailException) as err:
        mwb.summary(found, backfilled)
    assert str(err.value) == f"{step} failed (see its log); nothing more to report."
