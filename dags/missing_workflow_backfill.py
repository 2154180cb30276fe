"""
Find Temporal workflow executions that are missing or failed, interval by interval, and backfill them.

    settle ──► resolve_spec ──► find_gaps ──► backfill ──► summary

``settle`` waits until the interval ended ``MISSING_WORKFLOW_BACKFILL_SETTLE`` ago, so that the
interval's own workflows had their chance to start: a workflow that has not started yet would look
missing and get a replacement next to it. For each data interval and each key (customer, resource) of the spec, ``find_gaps`` expects one
successful execution whose id the spec's template gives (``reindexconversations-{customer}-
{interval_start:%Y%m%d}``), lists the actual executions by visibility query, reads each one's history
for its start and success points, and classifies the key: completed, running, running too long,
failed, timed out, terminated, canceled or missing. ``backfill`` starts one replacement per gap under a
deterministic id (``<expected id>-backfill-<attempt>``, so a re-run starts nothing twice) and records
it in the ClickHouse table ``backfill_requests``; with the ``dry_run`` Param it only reports.
``summary`` logs the counts per class and the ids started, and fails the run when backfilling failed.

The spec comes from, in this order: the ``spec`` Param, the file of the ``spec_file`` Param, the
Airflow Variable ``MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE`` (JSON), the file
``MISSING_WORKFLOW_BACKFILL_SPEC_FILE``. See docs/missing-workflow-backfill.md for its fields.

Deployment settings are environment variables, read at parse time without any I/O:

=========================================  ================================  ===========================
variable                                   default                           meaning
=========================================  ================================  ===========================
MISSING_WORKFLOW_BACKFILL_SCHEDULE         ``@daily``                        cron of the intervals (UTC)
MISSING_WORKFLOW_BACKFILL_START_DATE       ``2026-01-01``                    first interval
MISSING_WORKFLOW_BACKFILL_CATCHUP          ``false``                         create missed intervals
MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS  ``1``                             intervals checked at once
MISSING_WORKFLOW_BACKFILL_SETTLE           ``1h``                            wait after the interval (0: none)
MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE    ``missing_workflow_backfill_spec``  Variable holding the spec
MISSING_WORKFLOW_BACKFILL_SPEC_FILE        (none)                            JSON file holding the spec
MISSING_WORKFLOW_BACKFILL_TABLE            ``backfill_requests``             ClickHouse table
TEMPORAL_CONN_ID                           ``temporal_default``              Temporal connection
CLICKHOUSE_CONN_ID                         ``clickhouse_default``            ClickHouse connection
=========================================  ================================  ===========================
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task

from airflow_backfill_provider.operators.workflow_backfill import (
    TemporalBackfillGapsOperator,
    TemporalFindWorkflowGapsOperator,
)
from airflow_backfill_provider.utils import parse_duration

SCHEDULE = os.environ.get("MISSING_WORKFLOW_BACKFILL_SCHEDULE", "@daily")
START_DATE = pendulum.parse(os.environ.get("MISSING_WORKFLOW_BACKFILL_START_DATE", "2026-01-01"), tz="UTC")
CATCHUP = os.environ.get("MISSING_WORKFLOW_BACKFILL_CATCHUP", "false").lower() in ("1", "true", "yes")
MAX_ACTIVE_RUNS = int(os.environ.get("MISSING_WORKFLOW_BACKFILL_MAX_ACTIVE_RUNS", "1"))
_SETTLE = os.environ.get("MISSING_WORKFLOW_BACKFILL_SETTLE", "1h").strip().lower()
SETTLE = (
    None
    if _SETTLE in ("", "0", "none", "off")
    else parse_duration(_SETTLE, "MISSING_WORKFLOW_BACKFILL_SETTLE")
)
SPEC_VARIABLE = os.environ.get("MISSING_WORKFLOW_BACKFILL_SPEC_VARIABLE", "missing_workflow_backfill_spec")
SPEC_FILE = os.environ.get("MISSING_WORKFLOW_BACKFILL_SPEC_FILE")
TABLE = os.environ.get("MISSING_WORKFLOW_BACKFILL_TABLE", "backfill_requests")
TEMPORAL_CONN_ID = os.environ.get("TEMPORAL_CONN_ID", "temporal_default")
CLICKHOUSE_CONN_ID = os.environ.get("CLICKHOUSE_CONN_ID", "clickhouse_default")


@dag(
    dag_id="missing_workflow_backfill",
    description="Find missing or failed Temporal workflow executions per interval and backfill them once.",
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    max_active_runs=MAX_ACTIVE_RUNS,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    params={
        "spec": Param(
            None,
            type=["null", "object", "array"],
            description='Workflow spec (object, list, or {"workflows": [...]}); empty: spec_file, Variable, file.',
        ),
        "spec_file": Param(None, type=["null", "string"], description="Path of a JSON spec file."),
        "dry_run": Param(
            False, type="boolean", description="Classify and report only: start and record nothing."
        ),
        "max_starts": Param(
            100,
            type="integer",
            minimum=0,
            description="Refuse to start more replacements than this in one run.",
        ),
        "interval_start": Param(
            None, type=["null", "string"], description="Check this interval instead of the run's (ISO 8601)."
        ),
        "interval_end": Param(None, type=["null", "string"], description="End of that interval (exclusive)."),
    },
    tags=["backfill", "temporal", "clickhouse"],
    doc_md=__doc__,
)
def missing_workflow_backfill():
    @task
    def resolve_spec(params=None):
        """The raw spec (kept in XCom for the record); validated by find_gaps."""
        import json
        import logging

        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        log = logging.getLogger("airflow.task")
        if params.get("spec"):
            source, raw = "the 'spec' Param", params["spec"]
        else:
            path = params.get("spec_file") or None
            raw = None
            if path is None:
                raw = Variable.get(SPEC_VARIABLE, default=None, deserialize_json=True)
                source = f"Variable {SPEC_VARIABLE!r}"
                path = SPEC_FILE if raw is None else None
            if path:
                source = f"file {path}"
                try:
                    with open(path) as f:
                        raw = json.load(f)
                except (OSError, ValueError) as err:
                    raise AirflowFailException(f"Cannot read the workflow spec from {path}: {err}") from err
            if raw is None:
                raise AirflowFailException(
                    "No workflow spec: pass the 'spec' or 'spec_file' Param, set the Variable "
                    f"{SPEC_VARIABLE!r}, or point MISSING_WORKFLOW_BACKFILL_SPEC_FILE at a JSON file."
                )
        log.info("Workflow spec from %s", source)
        return raw

    spec = resolve_spec()
    if SETTLE is not None:
        # Past intervals (backfills, catchup, manual runs of old dates) pass at once.
        TimeDeltaSensor(task_id="settle", delta=SETTLE, mode="reschedule", poke_interval=300) >> spec
    find = TemporalFindWorkflowGapsOperator(
        task_id="find_gaps",
        spec=spec,
        interval_start="{{ params.interval_start or data_interval_start.isoformat() }}",
        interval_end="{{ params.interval_end or data_interval_end.isoformat() }}",
        temporal_conn_id=TEMPORAL_CONN_ID,
    )
    backfill = TemporalBackfillGapsOperator(
        task_id="backfill",
        gaps=find.output,
        dry_run="{{ params.dry_run }}",
        max_starts="{{ params.max_starts }}",
        table=TABLE,
        temporal_conn_id=TEMPORAL_CONN_ID,
        clickhouse_conn_id=CLICKHOUSE_CONN_ID,
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def summary(found, backfilled) -> dict:
        """Counts per class, the ids started; fails the run if any earlier step failed."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from airflow_backfill_provider.workflows.gaps import CLASSES

        log = logging.getLogger("airflow.task")
        result: dict = {"specs": [e["spec"] for e in found or []], "counts": dict.fromkeys(CLASSES, 0)}
        for entry in found or []:
            for cls, n in entry["counts"].items():
                result["counts"][cls] += n
            counts = "  ".join(f"{c}={n}" for c, n in entry["counts"].items() if n) or "no keys"
            log.info("%s [%s, %s): %s", entry["spec"], entry["interval_start"], entry["interval_end"], counts)
        if found is not None:
            log.info("Keys per class: %s", "  ".join(f"{c}={n}" for c, n in result["counts"].items()))
        if backfilled:
            result.update(backfilled)
            verb = "Would start" if backfilled["dry_run"] else "Started"
            ids = backfilled["would_start"] if backfilled["dry_run"] else backfilled["started"]
            log.info("%s %d replacement(s): %s", verb, len(ids), ", ".join(ids) or "-")
            if backfilled["attached"]:
                log.info("Already started earlier (re-attached): %s", ", ".join(backfilled["attached"]))
            if backfilled["exhausted"]:
                log.warning("Attempts used up, not replaced: %s", ", ".join(backfilled["exhausted"]))
            log.info("Backfill requests recorded: %d new", backfilled["recorded"])
        if found is None or backfilled is None:
            raise AirflowFailException(
                f"{'find_gaps' if found is None else 'backfill'} failed (see its log); nothing more to report."
            )
        return result

    summary(find.output, backfill.output)


missing_workflow_backfill()
