"""Starting a workflow idempotently: id policies by name, and re-attaching instead of starting twice."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.temporal.search_attributes import typed_search_attributes

if TYPE_CHECKING:
    from temporalio.client import Client

REUSE_POLICIES = (
    "ALLOW_DUPLICATE",
    "ALLOW_DUPLICATE_FAILED_ONLY",
    "REJECT_DUPLICATE",
    "TERMINATE_IF_RUNNING",
)
CONFLICT_POLICIES = ("FAIL", "USE_EXISTING", "TERMINATE_EXISTING")


async def start_workflow(
    client: Client,
    workflow: str,
    *,
    workflow_id: str,
    task_queue: str,
    args: Sequence[Any] | None = None,
    id_reuse_policy: str = "REJECT_DUPLICATE",
    id_conflict_policy: str = "USE_EXISTING",
    execution_timeout: timedelta | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    search_attributes: Mapping[str, Any] | None = None,
    memo: Mapping[str, Any] | None = None,
    static_summary: str | None = None,
    rpc_timeout: timedelta | None = None,
    log: logging.Logger | logging.LoggerAdapter | None = None,
) -> dict[str, Any]:
    """Start ``workflow`` under ``workflow_id``, or re-attach to the execution holding the id.

    Returns ``{"workflow_id", "run_id", "started"}``; ``started`` is false when the id's
    policies made the call re-attach to an existing execution.
    """
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    reuse = _policy(WorkflowIDReusePolicy, id_reuse_policy, REUSE_POLICIES, "id_reuse_policy")
    conflict = _policy(WorkflowIDConflictPolicy, id_conflict_policy, CONFLICT_POLICIES, "id_conflict_policy")
    try:
        handle = await client.start_workflow(
            workflow,
            args=list(args or []),
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=conflict,
            execution_timeout=execution_timeout,
            run_timeout=run_timeout,
            task_timeout=task_timeout,
            search_attributes=typed_search_attributes(search_attributes),
            memo=dict(memo) if memo else None,
            static_summary=static_summary,
            rpc_timeout=rpc_timeout,
        )
    except WorkflowAlreadyStartedError as err:
        (log or logging.getLogger(__name__)).info(
            "Workflow %s already exists (run %s): re-attaching, not starting", workflow_id, err.run_id
        )
        return {"workflow_id": workflow_id, "run_id": err.run_id, "started": False}
    # The start response says whether USE_EXISTING attached to a running execution; the SDK keeps
    # it on the handle only.
    response = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(response, "started", True))
    return {"workflow_id": workflow_id, "run_id": handle.result_run_id, "started": started}


def _policy(enum: Any, value: Any, allowed: Sequence[str], what: str) -> Any:
    if isinstance(value, enum):
        return value
    name = str(value).upper()
    if name not in allowed:
        raise ConfigurationError(f"Invalid {what} {value!r}; use one of {', '.join(allowed)}.")
    return enum[name]
