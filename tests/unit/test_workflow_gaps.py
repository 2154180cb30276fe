"""The pure gap logic: spec parsing, id templates, queries, classification (no server needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.workflows.classify import (
    Execution,
    HistoryPoints,
    KeyReport,
    assign_executions,
    classify_key,
    count_classes,
)
from airflow_backfill_provider.workflows.requests import backfill_requests_ddl, request_id
from airflow_backfill_provider.workflows.spec import (
    parse_specs,
    render_args,
    render_workflow_id,
    replacement_attempt,
    replacement_workflow_id,
)
from airflow_backfill_provider.workflows.status import KeyClass
from airflow_backfill_provider.workflows.visibility import visibility_queries

COMPLETED, FAILED, MISSING = KeyClass.COMPLETED, KeyClass.FAILED, KeyClass.MISSING
RUNNING_CLASS, RUNNING_TOO_LONG = KeyClass.RUNNING, KeyClass.RUNNING_TOO_LONG
TERMINATED, TIMED_OUT = KeyClass.TERMINATED, KeyClass.TIMED_OUT

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=1)
NOW = datetime(2026, 1, 3, tzinfo=timezone.utc)
SPEC = {
    "workflow_type": "ReindexConversations",
    "task_queue": "reindex_conversations",
    "id_template": "reindexconversations-{customer}-{interval_start:%Y%m%d}",
    "key_name": "customer",
    "keys": ["sunbit", "acme"],
}


def spec(**overrides):
    return parse_specs({**SPEC, **overrides})[0]


def test_spec_forms_and_defaults():
    one = parse_specs(SPEC)
    assert parse_specs([SPEC]) == one == parse_specs({"workflows": [SPEC]})
    import json

    assert parse_specs(json.dumps(SPEC)) == one
    s = one[0]
    assert s.label == "ReindexConversations" and s.match == "exact" and s.max_attempts == 3
    assert [k.resource_id for k in s.keys] == ["sunbit", "acme"]


def test_render_id_and_args():
    s = spec(
        args=[{"customer": "{customer}", "from": "{interval_start}", "day": "{interval_start:%Y-%m-%d}"}]
    )
    key = s.keys[0]
    assert render_workflow_id(s, key, START, END) == "reindexconversations-sunbit-20260101"
    assert render_args(s, key, START, END) == [
        {"customer": "sunbit", "from": "2026-01-01T00:00:00+00:00", "day": "2026-01-01"}
    ]
    default = render_args(spec(), key, START, END)[0]
    assert default == {
        "customer": "sunbit",
        "resource_id": "sunbit",
        "interval_start": "2026-01-01T00:00:00+00:00",
        "interval_end": "2026-01-02T00:00:00+00:00",
    }


def test_object_keys_feed_the_template():
    s = spec(
        id_template="backfillscorecards-{customer}-{profile}-{interval_start:%Y%m%d}",
        keys=[
            {"customer": "sunbit", "profile": "us-east-1"},
            {"customer": "sunbit", "profile": "eu", "resource_id": "s-eu"},
        ],
    )
    assert [k.resource_id for k in s.keys] == ["sunbit", "s-eu"]
    assert render_workflow_id(s, s.keys[1], START, END) == "backfillscorecards-sunbit-eu-20260101"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"workflow_type": ""}, "'workflow_type' is required"),
        ({"keys": []}, "'keys' is required"),
        ({"id_template": "reindex-{customer}"}, "must contain {interval_start"),
        ({"id_template": "reindex-{cust}-{interval_start:%Y}"}, r"unknown field\(s\) \['cust'\]"),
        ({"id_template": "reindex-{interval_start:%Y}"}, "render to the same workflow id"),
        ({"id_template": "x-{customer"}, "malformed"),
        ({"keys": ["a", "a"]}, "duplicate key"),
        ({"keys": ["o'brien"]}, "quote"),
        ({"match": "fuzzy"}, "'match' must be"),
        ({"max_running": "soon"}, "Invalid max_running"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"args": {"a": 1}}, "'args' must be a list"),
        ({"tasq_queue": "x"}, "unknown field"),
    ],
)
def test_bad_specs_are_explained(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        spec(**overrides)


def test_spec_names_must_be_distinct():
    with pytest.raises(ConfigurationError, match="share the name"):
        parse_specs([SPEC, SPEC])


def test_exact_queries_list_ids_and_possible_replacements():
    s = spec(max_attempts=2, extra_query="TaskQueue = 'reindex_conversations'")
    (query,) = visibility_queries(s, ["a-1", "b-1"])
    assert query == (
        "WorkflowType = 'ReindexConversations' AND (TaskQueue = 'reindex_conversations') AND WorkflowId IN "
        "('a-1', 'a-1-backfill-1', 'a-1-backfill-2', 'b-1', 'b-1-backfill-1', 'b-1-backfill-2')"
    )
    many = visibility_queries(s, [f"id{n}" for n in range(200)])
    assert len(many) == 3  # 600 ids, 200 per query


def test_prefix_queries_and_longest_prefix_assignment():
    s = spec(match="prefix")
    (query,) = visibility_queries(s, ["r-acme-1", "r-acme-eu-1"])
    assert "WorkflowId STARTS_WITH 'r-acme-1' OR WorkflowId STARTS_WITH 'r-acme-eu-1'" in query

    runs = [
        Execution("r-acme-1-3f2a", "r1", "Completed", START),
        Execution("r-acme-eu-1-77aa", "r2", "Failed", START),
        Execution("r-other", "r3", "Failed", START),
    ]
    grouped = assign_executions({"acme": "r-acme-1", "acme-eu": "r-acme-eu-1"}, runs, "prefix")
    assert [e.run_id for e in grouped["acme"]] == ["r1"]
    assert [e.run_id for e in grouped["acme-eu"]] == ["r2"]


def test_exact_assignment_takes_replacements_and_drops_strangers():
    runs = [
        Execution("w-1", "a", "Failed", START),
        Execution("w-1-backfill-1", "b", "Completed", START),
        Execution("w-1-extra", "c", "Completed", START),
        Execution("w-1", "a", "Failed", START),  # listed twice by two queries
    ]
    grouped = assign_executions({"k": "w-1"}, runs)
    assert [e.run_id for e in grouped["k"]] == ["a", "b"]


def at(minutes):
    return START + timedelta(minutes=minutes)


def classify(executions, points=None, **kw):
    return classify_key("k", "w-1", executions, points or {}, now=NOW, **kw)


def test_classification_from_history_points():
    failed = Execution("w-1", "r1", "Failed", at(0), at(5))
    report = classify([failed], {("w-1", "r1"): HistoryPoints(at(0), "Failed", at(5))})
    assert report.classification == FAILED and report.is_gap
    assert report.previous_run_id == "r1"
    assert report.replacement_workflow_id == "w-1-backfill-1" and report.attempt == 1
    assert "no success point" in report.reason

    # The replacement succeeded: the key is complete, whatever the original did.
    fixed = Execution("w-1-backfill-1", "r2", "Completed", at(10), at(12))
    points = {("w-1-backfill-1", "r2"): HistoryPoints(at(10), "Completed", at(12))}
    done = classify([failed, fixed], points)
    assert done.classification == COMPLETED and not done.is_gap and done.replacement_workflow_id is None

    assert classify([]).classification == MISSING
    assert classify([]).replacement_workflow_id == "w-1-backfill-1"


def test_history_beats_stale_visibility():
    # Visibility still says Running, the history already has the close event.
    stale = Execution("w-1", "r1", "Running", at(0))
    report = classify([stale], {("w-1", "r1"): HistoryPoints(at(0), "TimedOut", at(60))})
    assert report.classification == TIMED_OUT


def test_running_and_running_too_long():
    running = Execution("w-1", "r1", "Running", NOW - timedelta(hours=1))
    assert classify([running], max_running=timedelta(hours=2)).classification == RUNNING_CLASS
    too_long = classify([running], max_running=timedelta(minutes=30))
    assert too_long.classification == RUNNING_TOO_LONG and not too_long.is_gap
    assert "1h00m" in too_long.reason


def test_next_attempt_and_exhaustion():
    runs = [
        Execution("w-1", "r1", "Terminated", at(0), at(1)),
        Execution("w-1-backfill-1", "r2", "Failed", at(2), at(3)),
    ]
    report = classify(runs, max_attempts=3)
    assert report.classification == FAILED and report.previous_workflow_id == "w-1-backfill-1"
    assert report.replacement_workflow_id == "w-1-backfill-2"
    assert classify(runs[:1]).classification == TERMINATED
    spent = classify(runs, max_attempts=1)
    assert spent.exhausted and spent.replacement_workflow_id is None and "already tried" in spent.reason


def test_continued_as_new_runs_defer_to_their_successor():
    runs = [
        Execution("w-1", "r1", "ContinuedAsNew", at(0), at(1)),
        Execution("w-1", "r2", "Completed", at(1), at(2)),
    ]
    assert classify(runs).classification == COMPLETED


def test_report_round_trip_and_counts():
    report = classify([])
    assert KeyReport.from_dict({**report.to_dict(), "args": [1]}) == report
    counts = count_classes([report, report])
    assert counts[MISSING] == 2 and counts[COMPLETED] == 0 and len(counts) == 8


def test_replacement_ids_and_request_ids():
    assert replacement_workflow_id("w", 2) == "w-backfill-2"
    assert replacement_attempt("w", "w-backfill-2") == 2
    assert replacement_attempt("w", "w-backfill-x") is None
    assert (
        request_id("ns", "w-backfill-1")
        == request_id("ns", "w-backfill-1")
        != request_id("ns2", "w-backfill-1")
    )
    assert "ReplacingMergeTree" in backfill_requests_ddl(
        "db.requests"
    ) and "`db`.`requests`" in backfill_requests_ddl("db.requests")
    with pytest.raises(ValueError):
        backfill_requests_ddl("bad table")
