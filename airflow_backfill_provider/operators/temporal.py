"""Operators for Temporal: start a workflow (and optionally wait for it, deferrably)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.hooks.temporal import TemporalHook, TemporalWorkflowFailedError
from airflow_backfill_provider.triggers.temporal import TemporalWorkflowTrigger
from airflow_backfill_provider.workflows.status import WorkflowStatus

if TYPE_CHECKING:
    from airflow.sdk import Context


def _seconds(value: timedelta | float | int | None) -> timedelta | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


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
        with fail_without_retry():
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
        return {
            **started,
            "status": WorkflowStatus.COMPLETED,
            **({"result": result} if self.fetch_result else {}),
        }

    def execute_complete(
        self, context: Context, event: dict[str, Any], started: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._started = started
        if event.get("status") != "success":
            raise AirflowException(f"Workflow {(started or {}).get('workflow_id')}: {event.get('message')}")
        self.log.info("Workflow %s completed", (started or {}).get("workflow_id"))
        out = {**(started or {}), "status": WorkflowStatus.COMPLETED}
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
