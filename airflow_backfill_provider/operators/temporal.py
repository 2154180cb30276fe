"""Operators for Temporal: start a workflow, find missing executions, backfill them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.hooks.temporal import TemporalHook, TemporalWorkflowFailedError
from airflow_backfill_provider.schema import quote_identifier
from airflow_backfill_provider.triggers.temporal import TemporalWorkflowTrigger
from airflow_backfill_provider.workflow_gaps import (
    BACKFILL_REQUEST_COLUMNS,
    GAP_CLASSES,
    Execution,
    KeyReport,
    assign_executions,
    backfill_requests_ddl,
    classify_key,
    count_classes,
    parse_specs,
    render_args,
    render_workflow_id,
    request_id,
    visibility_queries,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def _seconds(value: timedelta | float | int | None) -> timedelta | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def _as_bool(value: Any) -> bool:
    # Templated booleans arrive as "True"/"False" unless the DAG renders native objects.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def default_workflow_id(context: Context) -> str:
    """``airflow__<dag>__<task>__<run>[__<map index>]``: stable across retries of one task instance."""
    ti = context["ti"]
    wid = f"airflow__{ti.dag_id}__{ti.task_id}__{ti.run_id}"
    map_index = getattr(ti, "map_index", -1)
    return f"{wid}__{map_index}" if map_index is not None and map_index >= 0 else wid


class TemporalStartWorkflowOperator(BaseOperator):
    """
    Start a Temporal workflow under a deterministic id; optionally wait for it to close.

    The id defaults to one derived from the dag, task and run ids, so an Airflow retry re-attaches
    to the execution the first try started instead of starting a second one. The default
    ``id_reuse_policy`` (``ALLOW_DUPLICATE_FAILED_ONLY``) makes a retry start a fresh run only when
    the earlier one did not complete; use ``REJECT_DUPLICATE`` to never run an id twice.

    Returns (XCom) ``{"workflow_id", "run_id", "started", "namespace"}``, plus ``status`` (and
    ``result`` with ``fetch_result``) when it waits.

    :param workflow_type: the workflow's registered name. (templated)
    :param task_queue: task queue the workers poll. (templated)
    :param args: list of workflow arguments (JSON-serialisable). (templated)
    :param workflow_id: id to start under; default derived from dag/task/run ids. (templated)
    :param search_attributes: ``{name: value}``, the type inferred from the value. (templated)
    :param memo: ``{name: value}`` attached to the execution. (templated)
    :param namespace: namespace instead of the connection's. (templated)
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param id_reuse_policy: when a closed execution holds the id: ``ALLOW_DUPLICATE``,
        ``ALLOW_DUPLICATE_FAILED_ONLY``, ``REJECT_DUPLICATE`` or ``TERMINATE_IF_RUNNING``.
    :param id_conflict_policy: when a running execution holds the id: ``USE_EXISTING`` (re-attach),
        ``FAIL`` or ``TERMINATE_EXISTING``.
    :param workflow_execution_timeout: Temporal's execution timeout (timedelta or seconds).
    :param workflow_run_timeout: Temporal's run timeout.
    :param workflow_task_timeout: Temporal's workflow task timeout.
    :param wait_for_completion: wait until the workflow closes; fail unless it completed.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between status checks while deferred.
    :param fetch_result: put the workflow's result in the XCom (it must be JSON-serialisable).
    :param cancel_on_kill: cancel the workflow when the task is killed.
    """

    template_fields: Sequence[str] = (
        "workflow_type",
        "task_queue",
        "args",
        "workflow_id",
        "search_attributes",
        "memo",
        "namespace",
    )
    template_fields_renderers = {"args": "json", "search_attributes": "json", "memo": "json"}
    ui_color = "#d8e6ff"

    def __init__(
        self,
        *,
        workflow_type: str,
        task_queue: str,
        args: list[Any] | None = None,
        workflow_id: str | None = None,
        search_attributes: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
        namespace: str | None = None,
        temporal_conn_id: str = TemporalHook.default_conn_name,
        id_reuse_policy: str = "ALLOW_DUPLICATE_FAILED_ONLY",
        id_conflict_policy: str = "USE_EXISTING",
        workflow_execution_timeout: timedelta | float | None = None,
        workflow_run_timeout: timedelta | float | None = None,
        workflow_task_timeout: timedelta | float | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        fetch_result: bool = False,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_type = workflow_type
        self.task_queue = task_queue
        self.args = args
        self.workflow_id = workflow_id
        self.search_attributes = search_attributes
        self.memo = memo
        self.namespace = namespace
        self.temporal_conn_id = temporal_conn_id
        self.id_reuse_policy = id_reuse_policy
        self.id_conflict_policy = id_conflict_policy
        self.workflow_execution_timeout = workflow_execution_timeout
        self.workflow_run_timeout = workflow_run_timeout
        self.workflow_task_timeout = workflow_task_timeout
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.fetch_result = fetch_result
        self.cancel_on_kill = cancel_on_kill
        self._started: dict[str, Any] | None = None

    @property
    def hook(self) -> TemporalHook:
        return TemporalHook(self.temporal_conn_id, namespace=self.namespace or None)

    def execute(self, context: Context) -> dict[str, Any]:
        if self.args is not None and not isinstance(self.args, (list, tuple)):
            raise AirflowFailException(
                f"args must be a list of workflow arguments, got {type(self.args).__name__}: {self.args!r:.200}"
            )
        workflow_id = self.workflow_id or default_workflow_id(context)
        hook = self.hook
        try:
            started = hook.start_workflow(
                self.workflow_type,
                workflow_id=workflow_id,
                task_queue=self.task_queue,
                args=self.args,
                id_reuse_policy=self.id_reuse_policy,
                id_conflict_policy=self.id_conflict_policy,
                execution_timeout=_seconds(self.workflow_execution_timeout),
                run_timeout=_seconds(self.workflow_run_timeout),
                task_timeout=_seconds(self.workflow_task_timeout),
                search_attributes=self.search_attributes,
                memo=self.memo,
            )
        except ConfigurationError as err:
            raise AirflowFailException(str(err)) from err
        started["namespace"] = hook.namespace
        self._started = started
        self.log.info(
            "%s workflow %s (%s) run %s in namespace %s",
            "Started" if started["started"] else "Re-attached to",
            workflow_id,
            self.workflow_type,
            started["run_id"],
            started["namespace"],
        )
        if not self.wait_for_completion:
            return started
        if self.deferrable:
            self.defer(
                trigger=TemporalWorkflowTrigger(
                    workflow_ids=[workflow_id],
                    temporal_conn_id=self.temporal_conn_id,
                    namespace=self.namespace or None,
                    poll_interval=self.poll_interval,
                    fetch_result=self.fetch_result,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                kwargs={"started": started},
            )
        try:
            result = hook.get_result(workflow_id, started["run_id"])
        except TemporalWorkflowFailedError as err:
            # Retryable on purpose: with ALLOW_DUPLICATE_FAILED_ONLY the retry starts a fresh run.
            raise AirflowException(str(err)) from err
        self.log.info("Workflow %s completed", workflow_id)
        return {**started, "status": "Completed", **({"result": result} if self.fetch_result else {})}

    def execute_complete(
        self, context: Context, event: dict[str, Any], started: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._started = started
        if event.get("status") != "success":
            raise AirflowException(f"Workflow {(started or {}).get('workflow_id')}: {event.get('message')}")
        self.log.info("Workflow %s completed", (started or {}).get("workflow_id"))
        out = {**(started or {}), "status": "Completed"}
        if self.fetch_result:
            out["result"] = event.get("result")
        return out

    def on_kill(self) -> None:
        if not (self.cancel_on_kill and self._started):
            return
        wid = self._started["workflow_id"]
        self.log.info("Task killed: cancelling workflow %s", wid)
        try:
            self.hook.cancel(wid)
        except Exception as err:
            self.log.warning("Could not cancel workflow %s: %s", wid, err)


class TemporalFindWorkflowGapsOperator(BaseOperator):
    """
    Classify, for one interval, every key of one or more workflow specs (read-only).

    For each key: the expected id from the spec's template, the executions visibility lists for it,
    the start and success points of their histories, and a class (completed, running, running too
    long, failed, timed out, terminated, canceled, missing). Gaps carry their replacement id and
    arguments. Returns one entry per spec (XCom), ready for :class:`TemporalBackfillGapsOperator`.

    :param spec: the spec document (object, list, ``{"workflows": [...]}`` or JSON). (templated)
    :param interval_start: default the run's ``data_interval_start``. (templated)
    :param interval_end: default the run's ``data_interval_end``. (templated)
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    """

    template_fields: Sequence[str] = ("spec", "interval_start", "interval_end")
    template_fields_renderers = {"spec": "json"}

    def __init__(
        self,
        *,
        spec: Any,
        interval_start: str | datetime | None = None,
        interval_end: str | datetime | None = None,
        temporal_conn_id: str = TemporalHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.interval_start = interval_start
        self.interval_end = interval_end
        self.temporal_conn_id = temporal_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        try:
            specs = parse_specs(self.spec)
            start = _utc(self.interval_start or context["data_interval_start"], "interval_start")
            end = _utc(self.interval_end or context["data_interval_end"], "interval_end")
            if end <= start:
                raise ConfigurationError(
                    f"The interval [{start.isoformat()}, {end.isoformat()}) is empty: use an interval "
                    "timetable (CronDataIntervalTimetable) or give interval_start/interval_end."
                )
        except ConfigurationError as err:
            raise AirflowFailException(str(err)) from err
        now = datetime.now(timezone.utc)
        entries = []
        for spec in specs:
            hook = TemporalHook(self.temporal_conn_id, namespace=spec.namespace)
            try:
                reports = self._classify(hook, spec, start, end, now)
            except ConfigurationError as err:
                raise AirflowFailException(str(err)) from err
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
                if r.classification != "completed":
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
                    "counts": counts,
                    "keys": [self._with_args(spec, r, start, end) for r in reports],
                }
            )
        return entries

    def _classify(
        self, hook: TemporalHook, spec, start: datetime, end: datetime, now: datetime
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
    def _with_args(spec, report: KeyReport, start: datetime, end: datetime) -> dict[str, Any]:
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
        dry_run = _as_bool(self.dry_run)
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
        rows = []
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
            rows.append(self._row(context, entry, r, res["run_id"]))
        out["recorded"] = self._record(rows)
        if out["errors"]:
            raise AirflowException(
                f"{len(out['errors'])} of {len(todo)} replacement(s) could not be started (the others were "
                f"started and recorded; a retry re-attaches to them): {out['errors'][:3]}"
            )
        return out

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

    @staticmethod
    def _row(context: Context, entry: Mapping[str, Any], r: KeyReport, run_id: str | None) -> dict[str, Any]:
        return {
            "request_id": request_id(entry["namespace"], r.replacement_workflow_id),
            "namespace": entry["namespace"],
            "workflow_type": entry["workflow_type"],
            "spec_name": entry["spec"],
            "resource_id": r.resource_id,
            "interval_start": _utc(entry["interval_start"], "interval_start"),
            "interval_end": _utc(entry["interval_end"], "interval_end"),
            "expected_workflow_id": r.expected_workflow_id,
            "previous_status": r.classification,
            "previous_workflow_id": r.previous_workflow_id,
            "previous_run_id": r.previous_run_id,
            "reason": r.reason,
            "attempt": r.attempt,
            "replacement_workflow_id": r.replacement_workflow_id,
            "replacement_run_id": run_id or "",
            "dag_id": context["ti"].dag_id,
            "dag_run_id": context["ti"].run_id,
            "created_at": datetime.now(timezone.utc),
        }

    def _record(self, rows: list[dict[str, Any]]) -> int:
        """Insert the requests not recorded yet; returns how many were new."""
        if not rows:
            return 0
        from airflow_backfill_provider.hooks.clickhouse import ClickHouseHook

        with ClickHouseHook(clickhouse_conn_id=self.clickhouse_conn_id).session() as client:
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
        start_time=_utc(info["start_time"], "start_time"),
        close_time=_utc(info["close_time"], "close_time") if info.get("close_time") else None,
        workflow_type=info.get("workflow_type", ""),
    )


def _utc(value: str | datetime, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise ConfigurationError(f"{what} {value!r} is not an ISO 8601 timestamp.") from err
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _secs(value: timedelta | None) -> float | None:
    return value.total_seconds() if value else None
