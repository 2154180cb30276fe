"""Task logic of the ``k8s_job_backfill`` DAG: plan the Jobs, batch the workflows, write the report."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from airflow_backfill_provider.exceptions import ConfigurationError, fail_without_retry
from airflow_backfill_provider.kubernetes import config as backfill_config
from airflow_backfill_provider.settings.k8s_job_backfill import START_DATE_VARIABLE, K8sJobBackfillSettings
from airflow_backfill_provider.tasks.runs import (
    SCHEDULED,
    RunInfo,
    dry_run,
    note_on_run,
    skip_run,
    upstream_result,
)
from airflow_backfill_provider.utils import iso
from airflow_backfill_provider.workflows.tracking import failure_message, tracking_document

log = logging.getLogger("airflow.task")

SCHEDULED_RUNS_OFF = (
    "Scheduled runs are off until " + START_DATE_VARIABLE + " is set: this {run} creates no Job. Backfill "
    "with `airflow backfill create --dag-id k8s_job_backfill --from-date ... --to-date ...` or the Backfill "
    "dialog, trigger one interval by hand, or set " + START_DATE_VARIABLE + " (docs/kubernetes.md)."
)
TRACKING_FILE = "backfill_tracking.json"
PLAN_XCOM_KEY = "plan"


def plan(
    params: Mapping[str, Any],
    *,
    settings: K8sJobBackfillSettings,
    run: RunInfo,
    connection_exists: Any = None,
) -> dict[str, Any]:
    """The Jobs of this run: one operator's kwargs per (cluster, customer), and each cluster's Temporal.

    A scheduled run without a start date is skipped, saying why. The config comes from the
    ``config`` Param, the ``config_file`` Param's file, the Airflow Variable, or the settings' file;
    every selected cluster needs its two connections. All of these fail without retry.

    :param connection_exists: ``conn_id -> bool`` (default: Airflow's connection look-up).
    """
    if run.run_type == SCHEDULED and not settings.scheduled_runs:
        skip_run(SCHEDULED_RUNS_OFF.format(run=run.describe()))
    with fail_without_retry():
        source, raw = find_config(params, settings)
        targets = backfill_config.select(
            backfill_config.parse(raw, source, settings.defaults),
            clusters=params.get("clusters") or (),
            customers=params.get("customers") or (),
        )
        check_connections(targets, connection_exists or _connection_exists)
        start, end = run.interval()
        if start is None or end is None:
            raise ConfigurationError(f"This {run.describe()} has no data interval to backfill.")
        is_dry = dry_run(run, params.get("dry_run"))
    log.info(
        "%s %d Job(s) over [%s, %s) from the config in %s: %s",
        "Dry run, would create" if is_dry else "Creating", len(targets), iso(start), iso(end), source,
        ", ".join(f"{t.cluster}/{t.customer}" for t in targets[:20]) + (" …" if len(targets) > 20 else ""),
    )  # fmt: skip
    jobs = [
        {
            "cluster": t.cluster,
            "customer": t.customer,
            "kubernetes_conn_id": t.kubernetes_conn_id,
            "namespace": t.namespace,
            "cronjob_name": t.cronjob,
            "container": t.container,
            "env": {
                settings.start_env: iso(start),
                settings.end_env: iso(end),
                settings.customers_env: t.customer,
            },
            "dry_run": is_dry,
        }
        for t in targets
    ]
    clusters = {
        t.cluster: {"temporal_conn_id": t.temporal_conn_id, "namespace": t.temporal_namespace}
        for t in targets
    }
    return {
        "jobs": jobs,
        "targets": [t.as_dict() for t in targets],
        "clusters": clusters,
        "dry_run": is_dry,
        "interval": [iso(start), iso(end)],
        "config_source": source,
    }


def find_config(params: Mapping[str, Any], settings: K8sJobBackfillSettings) -> tuple[str, Any]:
    """``(where it came from, raw config)``: first found of Param, Param file, Variable, settings file."""
    if params.get("config"):
        return "the 'config' Param", params["config"]
    path = params.get("config_file") or None
    if path is None:
        from airflow.sdk import Variable

        raw = Variable.get(settings.config_variable, default=None)
        if raw is not None:
            source = f"Variable {settings.config_variable!r}"
            return source, backfill_config.loads(raw, source) if isinstance(raw, str) else raw
        path = settings.config_file
    if not path:
        raise ConfigurationError(
            "No backfill config: pass the 'config' or 'config_file' Param, set the Airflow Variable "
            f"{settings.config_variable!r}, or point K8S_JOB_BACKFILL_CONFIG_FILE at a JSON file."
        )
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise ConfigurationError(f"Cannot read the backfill config file {path}: {err}") from err
    return f"file {path}", backfill_config.loads(text, f"file {path}")


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def check_connections(targets: Sequence[backfill_config.Target], exists: Any) -> None:
    """Every selected cluster has its Kubernetes and Temporal connections, before any Job is created."""
    seen: set[str] = set()
    for t in targets:
        if t.cluster in seen:
            continue
        seen.add(t.cluster)
        for conn_id, kind in ((t.kubernetes_conn_id, "kubernetes"), (t.temporal_conn_id, "temporal")):
            if not exists(conn_id):
                from airflow_backfill_provider.hooks.kubernetes import missing_connection

                raise missing_connection(conn_id, t.cluster, kind)


def sensor_batches(plan_: Mapping[str, Any], results: Sequence[Any]) -> list[dict[str, Any]]:
    """One ``TemporalWorkflowSensor`` per cluster with workflows: its ids, connection and namespace.

    :param results: the ``create_job`` output of each map index (``None`` where that task failed).
    """
    ids: dict[str, list[str]] = {}
    for job, found in zip(plan_["jobs"], results, strict=True):
        for entry in found or []:
            ids.setdefault(job["cluster"], [])
            if entry["workflow_id"] not in ids[job["cluster"]]:
                ids[job["cluster"]].append(entry["workflow_id"])
    return [{"workflow_ids": wids, **plan_["clusters"][cluster]} for cluster, wids in ids.items() if wids]


def tracked_jobs(
    plan_: Mapping[str, Any], results: Sequence[Any], records: Sequence[Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """One entry per (cluster, customer): its Job and the workflows its pods logged."""
    jobs = []
    for target, found, record in zip(plan_["targets"], results, records, strict=True):
        entry = {
            "cluster": target["cluster"],
            "customer": target["customer"],
            "profile": target["profile"],
            "namespace": (record or {}).get("namespace") or target["namespace"],
            "job_name": (record or {}).get("job_name"),
            "created": (record or {}).get("created"),
            "temporal_namespace": target["temporal_namespace"],
            "workflows": list(found or []),
        }
        if found is None:
            entry["error"] = "the create_job task failed: see its log"
        jobs.append(entry)
    return jobs


def tracking_path(base: str, dag_id: str, run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return f"{base.rstrip('/')}/{dag_id}/{safe}/{TRACKING_FILE}"


def report(
    plan_: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    statuses: Mapping[str, str | None],
    *,
    path: str,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Write the tracking record to ``path`` (any ``ObjectStoragePath`` URL) and log the summary.

    Fails the run, naming them, when a workflow did not complete, is unknown to Temporal or is
    still open, or when a Job could not be created or read.
    """
    from airflow.sdk import ObjectStoragePath

    document = tracking_document(
        jobs,
        statuses,
        dag_id=dag_id,
        run_id=run_id,
        time_range={"start": plan_["interval"][0], "end": plan_["interval"][1]},
        dry_run=plan_["dry_run"],
        config_source=plan_["config_source"],
        updated_at=iso(datetime.now(timezone.utc)),
    )
    target = ObjectStoragePath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=False))
    summary = document["summary"]
    log.info("Tracking file: %s", path)
    log.info("All clusters: %d workflow(s) %s", summary["total"], _counts(summary["counts"]))
    for cluster, cs in summary["clusters"].items():
        log.info("  %s: %d workflow(s) %s", cluster, cs["total"], _counts(cs["counts"]))
        for customer, cu in cs["customers"].items():
            log.info(
                "    %s: %s%s",
                customer,
                _counts(cu["counts"]),
                f"  failed: {', '.join(cu['failed'])}" if cu["failed"] else "",
            )
    problems = []
    broken = [f"{j['cluster']}/{j['customer']}" for j in jobs if j.get("error")]
    if broken:
        problems.append(f"{len(broken)} Job(s) failed to create or report workflows: {', '.join(broken)}")
    by_id = {w["workflow_id"]: w["status"] for j in document["jobs"] for w in j["workflows"]}
    message = failure_message(summary, by_id)
    if message:
        problems.append(message)
    outcome = (
        f"{'Dry run: ' if plan_['dry_run'] else ''}{len(jobs)} Job(s) over "
        f"[{plan_['interval'][0]}, {plan_['interval'][1]}), {summary['total']} workflow(s) "
        f"{_counts(summary['counts'])}. Tracking file: {path}"
    )
    if problems:
        note_on_run(f"{outcome}. Failed: {'; '.join(problems)}.")
        raise AirflowFailException("; ".join(problems) + f". Tracking file: {path}")
    note_on_run(outcome)
    return {"path": path, "summary": summary}


def _counts(counts: Mapping[str, int]) -> str:
    return "  ".join(f"{s}={n}" for s, n in counts.items()) or "none"


def pulled_plan(ti: Any, then: str) -> dict[str, Any]:
    """``resolve``'s plan; a skip when ``resolve`` skipped, a failure when it failed (not a quiet green)."""
    return upstream_result(ti, "resolve", ti.xcom_pull(task_ids="resolve", key=PLAN_XCOM_KEY), then=then)


def pull_mapped(ti: Any, task_id: str, count: int, key: str = "return_value") -> list[Any]:
    """The XCom of each map index of ``task_id``, ``None`` where that instance failed."""
    return [ti.xcom_pull(task_ids=task_id, map_indexes=i, key=key) for i in range(count)]


def latest_statuses(plan_: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """The latest status of every logged workflow, described on its cluster's Temporal."""
    from airflow_backfill_provider.hooks.temporal import TemporalHook

    by_cluster: dict[str, list[str]] = {}
    for job in jobs:
        by_cluster.setdefault(job["cluster"], []).extend(w["workflow_id"] for w in job["workflows"])
    statuses: dict[str, str | None] = {}
    for cluster, ids in by_cluster.items():
        if not ids:
            continue
        temporal = plan_["clusters"][cluster]
        hook = TemporalHook(temporal["temporal_conn_id"], namespace=temporal["namespace"])
        with fail_without_retry():
            described = hook.get_statuses(list(dict.fromkeys(ids)))
        statuses.update({wid: (d["status"] if d else None) for wid, d in described.items()})
    return statuses
