"""Wait, in the triggerer, for Temporal workflows to close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.workflows.status import FAILURE_STATUSES, OPEN_STATUSES, WorkflowStatus


def failed_statuses(
    statuses: Mapping[str, str | None], allowed_failures: Sequence[str] = ()
) -> dict[str, str]:
    """The workflows that ended Failed, TimedOut, Terminated or Canceled, less the allowed ones."""
    allowed = set(allowed_failures)
    return {wid: s for wid, s in statuses.items() if s in FAILURE_STATUSES and s not in allowed}


async def poll_statuses(
    hook: TemporalHook, *, workflow_ids: Sequence[str], query: str | None, min_matches: int = 1
) -> tuple[dict[str, str | None] | None, str]:
    """``(statuses, pending)``: the latest status per workflow once all are closed, else ``None``.

    Workflow ids are described (strongly consistent); a query is answered by visibility, which
    may lag a little behind. ``pending`` says, for the log, what is still awaited.
    """
    if workflow_ids:
        described = await hook.aget_statuses(workflow_ids)
        statuses = {wid: (d["status"] if d else None) for wid, d in described.items()}
        waiting = [w for w, s in statuses.items() if s is None or s in OPEN_STATUSES]
        if waiting:
            more = " …" if len(waiting) > 5 else ""
            return None, f"{len(waiting)} workflow(s) not closed yet: {', '.join(waiting[:5])}{more}"
        return statuses, ""
    # Count first: while anything is still running, listing every match would be wasted work.
    running = await hook.acount_executions(f"({query}) AND ExecutionStatus = '{WorkflowStatus.RUNNING}'")
    if running:
        return None, f"{running} workflow(s) matching {query} still running"
    latest: dict[str, str | None] = {}
    for run in sorted(await hook.alist_executions(query), key=lambda r: r["start_time"] or ""):
        latest[run["workflow_id"]] = run["status"]
    if len(latest) < min_matches:
        return None, f"{query} matches {len(latest)} workflow(s), waiting for at least {min_matches}"
    if any(s in OPEN_STATUSES for s in latest.values()):
        return None, f"workflows matching {query} continued as new and are not closed yet"
    return latest, ""


class TemporalWorkflowTrigger(BaseTrigger):
    """
    Fire once every workflow given (by ids, or by a visibility query) has closed.

    The event is ``{"status": "success"|"error", "message", "workflow_ids", "statuses"}``;
    ``statuses`` maps each workflow id to its final status, ``failures`` the ones that failed
    (ended Failed, TimedOut, Terminated or Canceled and not in ``allowed_failures``). Polling is
    read-only, so the trigger can run twice (triggerer restart, redistribution) with no effect.

    :param workflow_ids: workflows to wait for (their latest run).
    :param query: or a visibility query; waits until nothing it matches is running.
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param namespace: namespace instead of the connection's.
    :param poll_interval: seconds between polls.
    :param allowed_failures: statuses that do not count as failures, e.g. ``["Canceled"]``.
    :param min_matches: query mode: wait until at least this many workflows match.
    :param fetch_result: single workflow only: put its result in the event's ``result``.
    :param cancel_on_kill: cancel the workflows when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        workflow_ids: Sequence[str] = (),
        query: str | None = None,
        temporal_conn_id: str = TemporalHook.default_conn_name,
        namespace: str | None = None,
        poll_interval: float = 10.0,
        allowed_failures: Sequence[str] = (),
        min_matches: int = 1,
        fetch_result: bool = False,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        if bool(workflow_ids) == bool(query):
            raise ValueError("Give TemporalWorkflowTrigger either workflow_ids or a query, not both.")
        self.workflow_ids = list(workflow_ids)
        self.query = query
        self.temporal_conn_id = temporal_conn_id
        self.namespace = namespace
        self.poll_interval = float(poll_interval)
        self.allowed_failures = list(allowed_failures)
        self.min_matches = int(min_matches)
        self.fetch_result = bool(fetch_result)
        self.cancel_on_kill = bool(cancel_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workflow_ids": list(self.workflow_ids),
                "query": self.query,
                "temporal_conn_id": self.temporal_conn_id,
                "namespace": self.namespace,
                "poll_interval": self.poll_interval,
                "allowed_failures": list(self.allowed_failures),
                "min_matches": self.min_matches,
                "fetch_result": self.fetch_result,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    def _hook(self) -> TemporalHook:
        return TemporalHook(self.temporal_conn_id, namespace=self.namespace)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ids = {"workflow_ids": list(self.workflow_ids), "query": self.query}
        try:
            hook = self._hook()
            while True:
                statuses, pending = await poll_statuses(
                    hook, workflow_ids=self.workflow_ids, query=self.query, min_matches=self.min_matches
                )
                if statuses is not None:
                    break
                self.log.info("Waiting: %s", pending)
                await asyncio.sleep(self.poll_interval)
            failures = failed_statuses(statuses, self.allowed_failures)
            event: dict[str, Any] = {**ids, "statuses": statuses, "failures": failures}
            if failures:
                event["status"] = "error"
                event["message"] = f"{len(failures)} workflow(s) did not complete: " + ", ".join(
                    f"{w} {s}" for w, s in list(failures.items())[:10]
                )
            else:
                event["status"] = "success"
                event["message"] = f"{len(statuses)} workflow(s) closed"
                if self.fetch_result and len(self.workflow_ids) == 1:
                    event["result"] = await hook.aget_result(self.workflow_ids[0])
            yield TriggerEvent(event)
        except Exception as err:
            # Any exception becomes an error event, so the task fails with the reason in its log.
            yield TriggerEvent({**ids, "status": "error", "message": f"{type(err).__name__}: {err}"})

    async def on_kill(self) -> None:
        if not (self.cancel_on_kill and self.workflow_ids):
            return
        hook = self._hook()
        for wid in self.workflow_ids:
            self.log.info("Task killed: cancelling workflow %s", wid)
            try:
                await hook.acancel(wid)
            except Exception as err:
                self.log.warning("Could not cancel workflow %s: %s", wid, err)
