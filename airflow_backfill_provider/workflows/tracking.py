"""The tracking record of workflows that Jobs started, and its status summary per cluster and customer.

The record has the shape of the seed's ``backfill_tracking.json``: one entry per Job with the
workflows its pods logged, each with its latest Temporal status; the summary is what the seed's
``check_status.py`` printed: counts per status, and the ids that did not complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_backfill_provider.workflows.status import FAILURE_STATUSES, OPEN_STATUSES

NOT_FOUND = "NotFound"


def tracking_document(
    jobs: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, str | None],
    **header: Any,
) -> dict[str, Any]:
    """The tracking record: ``header`` (run, time range...), the jobs with statuses, the summary.

    :param jobs: ``{cluster, customer, ..., workflows: [{workflow_id, ...}]}`` per Job.
    :param statuses: latest status per workflow id (``None``: Temporal does not know the id).
    """
    tracked = []
    for job in jobs:
        workflows = [
            {**w, "status": str(statuses.get(w["workflow_id"]) or NOT_FOUND)}
            for w in job.get("workflows") or []
        ]
        tracked.append({**job, "workflow_ids": [w["workflow_id"] for w in workflows], "workflows": workflows})
    return {**header, "jobs": tracked, "summary": status_summary(tracked)}


def status_summary(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status and the failed, unknown and open ids: overall, per cluster, per customer."""
    total = _Tally()
    clusters: dict[str, _Tally] = {}
    customers: dict[str, dict[str, _Tally]] = {}
    for job in jobs:
        cluster, customer = job["cluster"], job["customer"]
        tallies = (
            total,
            clusters.setdefault(cluster, _Tally()),
            customers.setdefault(cluster, {}).setdefault(customer, _Tally()),
        )
        for w in job.get("workflows") or []:
            for tally in tallies:
                tally.add(w["workflow_id"], w["status"])
    return {
        **total.as_dict(),
        "clusters": {
            name: {**tally.as_dict(), "customers": {c: t.as_dict() for c, t in customers[name].items()}}
            for name, tally in clusters.items()
        },
    }


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.failed: list[str] = []
        self.not_found: list[str] = []
        self.open: list[str] = []

    def add(self, workflow_id: str, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        if status in FAILURE_STATUSES:
            self.failed.append(workflow_id)
        elif status == NOT_FOUND:
            self.not_found.append(workflow_id)
        elif status in OPEN_STATUSES:
            self.open.append(workflow_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": sum(self.counts.values()),
            "counts": dict(sorted(self.counts.items())),
            "failed": self.failed,
            "not_found": self.not_found,
            "open": self.open,
        }


def failure_message(
    summary: Mapping[str, Any], statuses: Mapping[str, Any] | None = None, limit: int = 20
) -> str | None:
    """Why the backfill did not succeed, naming the workflows; ``None`` when every one completed.

    :param statuses: status per id, to name each failed workflow's (``wid (Failed)``).
    """
    statuses = statuses or {}
    parts = []
    for key, what in (
        ("failed", "did not complete"),
        ("not_found", "are unknown to Temporal"),
        ("open", "are still open"),
    ):
        ids = summary[key]
        if ids:
            named = [f"{w} ({statuses[w]})" if key == "failed" and w in statuses else w for w in ids[:limit]]
            more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
            parts.append(f"{len(ids)} workflow(s) {what}: {', '.join(named)}{more}")
    return "; ".join(parts) or None
