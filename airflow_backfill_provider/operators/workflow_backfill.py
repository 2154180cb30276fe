"""Operators that find missing or failed Temporal workflow executions and backfill them.

Used by the ``missing_workflow_backfill`` DAG; the gap logic itself is in
:mod:`airflow_backfill_provider.workflows` (no Airflow import).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backfill_provider.exceptions import ConfigurationError, fail_without_retry, missing_connection
from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.operators.temporal import _seconds
from airflow_backfill_provider.settings.schedule import last_complete_interval
from airflow_backfill_provider.utils import as_bool, quote_identifier, to_utc
from airflow_backfill_provider.workflows.classify import (
    Execution,
    KeyReport,
    assign_executions,
    classify_key,
    count_classes,
)
from airflow_backfill_provider.workflows.requests import (
    BACKFILL_REQUEST_COLUMNS,
    backfill_requests_ddl,
    request_row,
)
from airflow_backfill_provider.workflows.retention import OVERRIDE, check_retention
from airflow_backfill_provider.workflows.spec import (
    WorkflowSpec,
    parse_specs,
    render_args,
    render_workflow_id,
)
from airflow_backfill_provider.workflows.status import GAP_CLASSES, KeyClass
from airflow_backfill_provider.workflows.visibility import visibility_queries

if TYPE_CHECKING:
    from airflow.sdk import Context


class TemporalFindWorkflowGapsOperator(BaseOperator):
    """
    Classify, for one interval, every key of one or more workflow specs (read-only).

    For each key: the expected id from the spec's template, the executions visibility lists for it,
    the start and success points of their histories, and a class (completed, running, running too
    long, failed, timed out, terminated, canceled, missing). Gaps carry their replacement id and
    arguments. Returns one entry per spec (XCom), ready for :class:`TemporalBackfillGapsOperator`.

    An interval that starts before now minus the namespace's retention is refused: Temporal may have
    deleted executions of it that completed, and they would look missing.

    :param spec: the spec document (object, list, ``{"workflows": [...]}`` or JSON). (templated)
    :param interval_start: default the run's ``data_interval_start``. (templated)
    :param interval_end: default the run's ``data_interval_end``. (templated)
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param allow_beyond_retention: check such an interval anyway, with a warning: a key whose
        executions Temporal deleted is then classified missing. (templated)
    """

    template_fields: Sequence[str] = ("spec", "interval_start", "interval_end", "allow_beyond_retention")
    template_fields_renderers = {"spec": "json"}

    def __init__(
        self,
        *,
        spec: Any,
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        temporal_conn_id: str = TemporalHook.default_conn_name,
        allow_beyond_retention: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.temporal_conn_id = temporal_conn_id
        self.allow_beyond_retention = allow_beyond_retention

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with fail_without_retry():
            specs = parse_specs(self.spec)
            start, end = self._interval(context)
            allow = as_bool(self.allow_beyond_retention, OVERRIDE)
        now = datetime.now(timezone.utc)
        entries = []
        for spec in specs:
            hook = TemporalHook(self.temporal_conn_id, namespace=spec.namespace)
            with fail_without_retry():  # also a missing connection, and an interval beyond retention
                retention = hook.describe_namespace()["retention"]
                beyond = check_retention(spec.label, hook.namespace, start, end, now, retention, allow)
                if beyond:
                    self.log.warning("%s", beyond)
                reports = self._classify(hook, spec, start, end, now)
            counts = count_classes(reports)
            self.log.info(
                "%s in %s, [%s, %s): %s",
                spec.label,
                hook.namespace,
                start.isoformat(),
                end.isoformat(),
                ", ".join(f"{c} {n}" for c, n in counts.items() if n) or "no keys",
            )
            for r in reports:
                if r.classification != KeyClass.COMPLETED:
                    self.log.info("  %-16s %s: %s", r.classification, r.resource_id, r.reason)
            entries.append(
                {
                    "spec": spec.label,
                    "namespace": hook.namespace,
                    "workflow_type": spec.workflow_type,
                    "task_queue": spec.task_queue,
                    "interval_start": start.isoformat(),
                    "interval_end": end.isoformat(),
                    "execution_timeout": _secs(spec.execution_timeout),
                    "run_timeout": _secs(spec.run_timeout),
                    "retention_seconds": _secs(retention),
                    "beyond_retention": beyond is not None,
                    "counts": counts,
                    "keys": [self._with_args(spec, r, start, end) for r in reports],
                }
            )
        return entries

    def _interval(self, context: Context) -> tuple[datetime, datetime]:
        """The interval to check: the given one, else the run's data interval, else (a run triggered
        without a logical date) the last complete interval of the DAG's cron schedule."""
        if bool(self.interval_start) != bool(self.interval_end):
            raise ConfigurationError(
                f"Give both interval_start and interval_end, or neither (got interval_start="
                f"{self.interval_start!r}, interval_end={self.interval_end!r})."
            )
        if self.interval_start:
            start = to_utc(self.interval_start, "interval_start")
            end = to_utc(self.interval_end, "interval_end")
            if end <= start:
                raise ConfigurationError(
                    f"interval_end {self.interval_end!r} is not after interval_start {self.interval_start!r}: "
                    "the interval is [interval_start, interval_end), end exclusive. Swap them."
                )
            return start, end
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            expression = getattr(getattr(context.get("dag"), "timetable", None), "expression", None)
            run_after = getattr(context.get("dag_run"), "run_after", None)
            if expression is None or run_after is None:
                raise ConfigurationError(
                    "This run has no data interval and its DAG no cron schedule to infer one from: "
                    "give interval_start and interval_end."
                )
            start, end = last_complete_interval(expression, run_after)
        start, end = to_utc(start, "data_interval_start"), to_utc(end, "data_interval_end")
        if end <= start:
            raise ConfigurationError(
                f"The interval [{start.isoformat()}, {end.isoformat()}) is empty: use an interval "
                "timetable (CronDataIntervalTimetable) or give interval_start/interval_end."
            )
        return start, end

    def _classify(
        self, hook: TemporalHook, spec: WorkflowSpec, start: datetime, end: datetime, now: datetime
    ) -> list[KeyReport]:
        expected = {k.resource_id: render_workflow_id(spec, k, start, end) for k in spec.keys}
        runs = []
        for query in visibility_queries(spec, list(expected.values())):
            runs.extend(hook.list_executions(query))
        grouped = assign_executions(expected, [_execution(r) for r in runs], spec.match)
        if spec.match == "exact":
            # Visibility lags a little behind: before calling a key missing, ask for its id directly.
            key_of = {wid: key for key, wid in expected.items()}
            missing = [expected[k] for k, found in grouped.items() if not found]
            for wid, info in hook.get_statuses(missing).items():
                if info is not None:
                    grouped[key_of[wid]].append(_execution(info))
        points = hook.get_history_points_many(
            [(e.workflow_id, e.run_id, e.status) for found in grouped.values() for e in found]
        )
        return [
            classify_key(
                k.resource_id,
                expected[k.resource_id],
                grouped[k.resource_id],
                points,
                now=now,
                max_running=spec.max_running,
                max_attempts=spec.max_attempts,
            )
            for k in spec.keys
        ]

    @staticmethod
    def _with_args(spec: WorkflowSpec, report: KeyReport, start: datetime, end: datetime) -> dict[str, Any]:
        data = report.to_dict()
        if report.replacement_workflow_id:
            key = next(k for k in spec.keys if k.resource_id == report.resource_id)
            data["args"] = render_args(spec, key, start, end)
        return data


class TemporalBackfillGapsOperator(BaseOperator):
    """
    Start a replacement for every gap found by :class:`TemporalFindWorkflowGapsOperator`, and record
    each as a backfill request in ClickHouse.

    Replacement ids are deterministic and started with ``USE_EXISTING``/``REJECT_DUPLICATE``, so a
    retry or a re-run re-attaches instead of starting twice; requests are keyed by namespace and
    replacement id and read before insert, so ``backfill_requests`` holds each once. One failed
    start does not stop the others; the task fails at the end so a retry picks up the rest.

    :param gaps: the find operator's output (usually its ``.output``). (templated)
    :param dry_run: only report what would be started and recorded. (templated)
    :param max_starts: refuse to start more than this many replacements in one run: a wrong id
        template makes every key look missing, and this stops it from starting thousands.
    :param table: ClickHouse table of backfill requests, created if absent.
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param clickhouse_conn_id: Airflow connection of type ``clickhouse``.
    """

    template_fields: Sequence[str] = ("gaps", "dry_run", "max_starts")

    def __init__(
        self,
        *,
        gaps: Any,
        dry_run: bool | str = False,
        max_starts: int | str = 100,
        table: str = "backfill_requests",
        temporal_conn_id: str = TemporalHook.default_conn_name,
        clickhouse_conn_id: str = "clickhouse_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.gaps = gaps
        self.dry_run = dry_run
        self.max_starts = max_starts
        self.table = table
        self.temporal_conn_id = temporal_conn_id
        self.clickhouse_conn_id = clickhouse_conn_id
        self._hooks: dict[str, TemporalHook] = {}

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_without_retry():
            dry_run = as_bool(self.dry_run, "dry_run")
        self.log.info(
            "%s", "Dry run: nothing will be started or recorded." if dry_run else "Starting replacements."
        )
        self._require_connections(dry_run)
        todo, exhausted = [], []
        for entry in self.gaps or []:
            for data in entry["keys"]:
                report = KeyReport.from_dict(data)
                if report.classification not in GAP_CLASSES:
                    continue
                item = (entry, report, data.get("args") or [])
                (exhausted if report.exhausted else todo).append(item)
        out: dict[str, Any] = {
            "dry_run": dry_run,
            "gaps": len(todo) + len(exhausted),
            "started": [],
            "attached": [],
            "would_start": [],
            "exhausted": [r.expected_workflow_id for _, r, _ in exhausted],
            "errors": [],
            "recorded": 0,
        }
        for _, r, _ in exhausted:
            self.log.warning("Not replaced (attempts used up): %s: %s", r.resource_id, r.reason)
        if len(todo) > int(self.max_starts):
            raise AirflowFailException(
                f"{len(todo)} gaps to backfill exceed max_starts={self.max_starts}: nothing started. Check the "
                "spec (a wrong id_template makes every key look missing), run with dry_run to review, or "
                "raise max_starts."
            )
        if dry_run:
            for entry, r, _ in todo:
                self.log.info(
                    "Dry run: would start %s (%s) for %s [%s]",
                    r.replacement_workflow_id,
                    entry["workflow_type"],
                    r.resource_id,
                    r.classification,
                )
                out["would_start"].append(r.replacement_workflow_id)
            return out
        rows, ti = [], context["ti"]
        for entry, r, args in todo:
            try:
                res = self._start(context, entry, r, args)
            except Exception as err:
                self.log.error("Could not start %s: %s", r.replacement_workflow_id, err)
                out["errors"].append({"workflow_id": r.replacement_workflow_id, "error": str(err)[:500]})
                continue
            (out["started"] if res["started"] else out["attached"]).append(r.replacement_workflow_id)
            self.log.info(
                "%s %s run %s for %s (%s)",
                "Started" if res["started"] else "Re-attached to",
                r.replacement_workflow_id,
                res["run_id"],
                r.resource_id,
                r.classification,
            )
            rows.append(request_row(entry, r, res["run_id"], dag_id=ti.dag_id, run_id=ti.run_id))
        out["recorded"] = self._record(rows)
        if out["errors"]:
            raise AirflowException(
                f"{len(out['errors'])} of {len(todo)} replacement(s) could not be started (the others were "
                f"started and recorded; a retry re-attaches to them): {out['errors'][:3]}"
            )
        return out

    def _require_connections(self, dry_run: bool) -> None:
        """A missing connection fails a real run at once, before anything is started (a replacement
        started, then not recorded, was retried as if ClickHouse were down); a dry run warns."""
        for conn_id in (self.temporal_conn_id, self.clickhouse_conn_id):
            try:
                BaseHook.get_connection(conn_id)
            except Exception as err:
                if dry_run and missing_connection(err):
                    self.log.warning("A real run would fail: %s", missing_connection(err))
                    continue
                with fail_without_retry():
                    raise

    def _start(self, context: Context, entry: Mapping[str, Any], r: KeyReport, args: list) -> dict[str, Any]:
        hook = self._hooks.get(entry["namespace"])
        if hook is None:  # one hook, hence one connection, per namespace
            hook = self._hooks[entry["namespace"]] = TemporalHook(
                self.temporal_conn_id, namespace=entry["namespace"]
            )
        return hook.start_workflow(
            entry["workflow_type"],
            workflow_id=r.replacement_workflow_id,
            task_queue=entry["task_queue"],
            args=args,
            id_reuse_policy="REJECT_DUPLICATE",
            id_conflict_policy="USE_EXISTING",
            execution_timeout=_seconds(entry.get("execution_timeout")),
            run_timeout=_seconds(entry.get("run_timeout")),
            memo={
                "backfill_of": r.expected_workflow_id,
                "previous_status": r.classification,
                "previous_run_id": r.previous_run_id,
                "airflow_dag_id": context["ti"].dag_id,
                "airflow_run_id": context["ti"].run_id,
            },
            static_summary=f"Backfill of {r.expected_workflow_id} ({r.classification})",
        )

    def _record(self, rows: list[dict[str, Any]]) -> int:
        """Insert the requests not recorded yet; returns how many were new."""
        if not rows:
            return 0
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

        with ClickHouseBackfillHook(clickhouse_conn_id=self.clickhouse_conn_id).session() as client:
            client.command(backfill_requests_ddl(self.table))
            existing = {
                row[0]
                for row in client.query(
                    f"SELECT request_id FROM {quote_identifier(self.table)} WHERE request_id IN {{ids:Array(String)}}",
                    parameters={"ids": [r["request_id"] for r in rows]},
                ).result_rows
            }
            new = [r for r in rows if r["request_id"] not in existing]
            if new:
                client.insert(
                    self.table,
                    [[r[c] for c in BACKFILL_REQUEST_COLUMNS] for r in new],
                    column_names=list(BACKFILL_REQUEST_COLUMNS),
                )
        self.log.info(
            "Recorded %d new backfill request(s) in %s (%d already there)",
            len(new),
            self.table,
            len(rows) - len(new),
        )
        return len(new)


def _execution(info: Mapping[str, Any]) -> Execution:
    return Execution(
        workflow_id=info["workflow_id"],
        run_id=info["run_id"],
        status=info["status"],
        start_time=to_utc(info["start_time"], "start_time"),
        close_time=to_utc(info["close_time"], "close_time") if info.get("close_time") else None,
        workflow_type=info.get("workflow_type", ""),
    )


def _secs(value: timedelta | None) -> float | None:
    return value.total_seconds() if value else None
