"""The ``backfill_requests`` store: one row per replacement started, keyed by a deterministic id."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.utils import quote_identifier, to_utc

if TYPE_CHECKING:
    from airflow_backfill_provider.workflows.classify import KeyReport

BACKFILL_REQUEST_COLUMNS = (
    "request_id",
    "namespace",
    "workflow_type",
    "spec_name",
    "resource_id",
    "interval_start",
    "interval_end",
    "expected_workflow_id",
    "previous_status",
    "previous_workflow_id",
    "previous_run_id",
    "reason",
    "attempt",
    "replacement_workflow_id",
    "replacement_run_id",
    "dag_id",
    "dag_run_id",
    "created_at",
)


def backfill_requests_ddl(table: str = "backfill_requests") -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the backfill requests (seed 000's ``Day2IssueForBackfill``).

    Writers read before they insert, so a plain ``SELECT count()`` sees no duplicates;
    ReplacingMergeTree on the deterministic ``request_id`` also folds a racing duplicate at merge.
    """
    return f"""CREATE TABLE IF NOT EXISTS {quote_identifier(table)}
(
    `request_id` String,
    `namespace` LowCardinality(String),
    `workflow_type` LowCardinality(String),
    `spec_name` LowCardinality(String),
    `resource_id` String,
    `interval_start` DateTime64(3, 'UTC'),
    `interval_end` DateTime64(3, 'UTC'),
    `expected_workflow_id` String,
    `previous_status` LowCardinality(String),
    `previous_workflow_id` String,
    `previous_run_id` String,
    `reason` String,
    `attempt` UInt16,
    `replacement_workflow_id` String,
    `replacement_run_id` String,
    `dag_id` String,
    `dag_run_id` String,
    `created_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY request_id"""


def request_id(namespace: str, replacement_id: str) -> str:
    """Deterministic request key: one request per replacement workflow in a namespace."""
    return hashlib.sha256(f"{namespace}\x00{replacement_id}".encode()).hexdigest()[:32]


def request_row(
    entry: Mapping[str, Any], report: KeyReport, replacement_run_id: str | None, *, dag_id: str, run_id: str
) -> dict[str, Any]:
    """The request row of one replacement: ``entry`` is its spec's find_gaps entry, ``report`` its key's."""
    return {
        "request_id": request_id(entry["namespace"], report.replacement_workflow_id),
        "namespace": entry["namespace"],
        "workflow_type": entry["workflow_type"],
        "spec_name": entry["spec"],
        "resource_id": report.resource_id,
        "interval_start": to_utc(entry["interval_start"], "interval_start"),
        "interval_end": to_utc(entry["interval_end"], "interval_end"),
        "expected_workflow_id": report.expected_workflow_id,
        "previous_status": report.classification,
        "previous_workflow_id": report.previous_workflow_id,
        "previous_run_id": report.previous_run_id,
        "reason": report.reason,
        "attempt": report.attempt,
        "replacement_workflow_id": report.replacement_workflow_id,
        "replacement_run_id": replacement_run_id or "",
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "created_at": datetime.now(timezone.utc),
    }
