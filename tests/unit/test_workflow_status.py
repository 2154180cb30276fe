"""The workflow-status vocabulary: members are the strings stored in XCom and ClickHouse rows."""

from __future__ import annotations

import json
from enum import Enum

from airflow_backfill_provider.workflows.status import (
    CLASSES,
    FAILURE_STATUSES,
    GAP_CLASSES,
    OPEN_STATUSES,
    KeyClass,
    WorkflowStatus,
)


def test_statuses_are_the_visibility_spellings():
    assert [s.value for s in WorkflowStatus] == [
        "Running",
        "Completed",
        "ContinuedAsNew",
        "Failed",
        "TimedOut",
        "Terminated",
        "Canceled",
    ]
    assert FAILURE_STATUSES == ("Failed", "TimedOut", "Terminated", "Canceled")
    assert OPEN_STATUSES == ("Running", "ContinuedAsNew")


def test_members_serialise_and_format_as_plain_strings():
    s = WorkflowStatus.TIMED_OUT
    assert s == "TimedOut" and "TimedOut" in FAILURE_STATUSES and {"TimedOut": 1}[s] == 1
    assert str(s) == f"{s}" == "TimedOut" and f"{s:>9}" == " TimedOut"
    assert "%s" % s == "TimedOut"  # noqa: UP031 (lazy log arguments are %-formatted)
    assert (
        json.dumps({"status": s, s: KeyClass.TIMED_OUT}) == '{"status": "TimedOut", "TimedOut": "timed_out"}'
    )


def test_from_sdk_matches_the_sdk_enum_by_name():
    class SdkStatus(Enum):  # the shape of temporalio.client.WorkflowExecutionStatus
        TIMED_OUT = 7
        CONTINUED_AS_NEW = 6
        SOMETHING_NEW = 99

    assert WorkflowStatus.from_sdk(SdkStatus.TIMED_OUT) is WorkflowStatus.TIMED_OUT
    assert WorkflowStatus.from_sdk(SdkStatus.CONTINUED_AS_NEW) == "ContinuedAsNew"
    assert WorkflowStatus.from_sdk(None) == "Unknown"
    assert WorkflowStatus.from_sdk(SdkStatus.SOMETHING_NEW) == "SdkStatus.SOMETHING_NEW"


def test_the_real_sdk_enum_maps_onto_every_member():
    from temporalio.client import WorkflowExecutionStatus

    assert {WorkflowStatus.from_sdk(s) for s in WorkflowExecutionStatus} == set(WorkflowStatus)


def test_classes_in_report_order():
    assert CLASSES == (
        "completed",
        "running",
        "running_too_long",
        "failed",
        "timed_out",
        "terminated",
        "canceled",
        "missing",
    )
    assert set(GAP_CLASSES) == set(CLASSES) - {"completed", "running", "running_too_long"}
