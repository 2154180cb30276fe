"""SDK objects as plain values: visibility records as dicts, a run's history as its points."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.utils import iso
from airflow_backfill_provider.workflows.classify import HistoryPoints
from airflow_backfill_provider.workflows.status import WorkflowStatus

if TYPE_CHECKING:
    from temporalio.client import WorkflowExecution, WorkflowHandle

_CLOSE_EVENTS = {
    "workflow_execution_completed_event_attributes": WorkflowStatus.COMPLETED,
    "workflow_execution_failed_event_attributes": WorkflowStatus.FAILED,
    "workflow_execution_timed_out_event_attributes": WorkflowStatus.TIMED_OUT,
    "workflow_execution_terminated_event_attributes": WorkflowStatus.TERMINATED,
    "workflow_execution_canceled_event_attributes": WorkflowStatus.CANCELED,
    "workflow_execution_continued_as_new_event_attributes": WorkflowStatus.CONTINUED_AS_NEW,
}


def execution_to_dict(ex: WorkflowExecution) -> dict[str, Any]:
    """The JSON-friendly part of a visibility record (for XCom and logs)."""
    return {
        "workflow_id": ex.id,
        "run_id": ex.run_id,
        "workflow_type": ex.workflow_type,
        "status": WorkflowStatus.from_sdk(ex.status),
        "task_queue": ex.task_queue,
        "start_time": iso(ex.start_time),
        "close_time": iso(ex.close_time),
        "history_length": ex.history_length,
    }


async def read_history_points(
    handle: WorkflowHandle, *, closed: bool, rpc_timeout: timedelta | None
) -> HistoryPoints:
    """The start point and the close event of a run, from two small reads of its history.

    :param closed: whether the run has closed. The close event is only read for closed runs: for
        an open one the server would hold the request until the run closes.
    """
    from temporalio.client import WorkflowHistoryEventFilterType

    start = close_status = close_time = None
    async for event in handle.fetch_history_events(page_size=1, rpc_timeout=rpc_timeout):
        if event.HasField("workflow_execution_started_event_attributes"):
            start = event.event_time.ToDatetime(tzinfo=timezone.utc)
        break
    if closed:
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT, rpc_timeout=rpc_timeout
        ):
            close_status = _CLOSE_EVENTS.get(event.WhichOneof("attributes"))
            if close_status:
                close_time = event.event_time.ToDatetime(tzinfo=timezone.utc)
    return HistoryPoints(start_time=start, close_status=close_status, close_time=close_time)
