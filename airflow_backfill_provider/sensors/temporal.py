"""Wait for Temporal workflows to close."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.hooks.temporal import TemporalHook
from airflow_backfill_provider.triggers.temporal import (
    TemporalWorkflowTrigger,
    failed_statuses,
    poll_statuses,
)
from airflow_backfill_provider.workflows.status import FAILURE_STATUSES

if TYPE_CHECKING:
    from airflow.sdk import Context

STATUSES_XCOM_KEY = "statuses"


class TemporalWorkflowSensor(BaseSensorOperator):
    """
    Wait until one workflow, several, or everything a visibility query matches has closed.

    Succeeds when all closed and none ended Failed, TimedOut, Terminated or Canceled (unless that
    status is in ``allowed_failures``); fails, without retrying, otherwise. The final status of
    every workflow, ``{workflow_id: status}``, is the return value (XCom) and is also pushed under
    the key ``statuses`` when the sensor fails. Works in ``poke`` and ``reschedule`` modes and,
    with ``deferrable=True``, checks once and then waits in the triggerer.

    Ids are described (strongly consistent); a query is answered by visibility, which can lag a
    second or so behind, so right after starting workflows prefer ids, or ``min_matches``.

    :param workflow_ids: one id or a list of ids (their latest runs). (templated)
    :param query: or a visibility query, e.g. ``WorkflowId STARTS_WITH 'reindex-'``. (templated)
    :param temporal_conn_id: Airflow connection of type ``temporal``.
    :param namespace: namespace instead of the connection's. (templated)
    :param allowed_failures: statuses that do not fail the sensor, e.g. ``["Canceled"]``.
    :param min_matches: query mode: wait until the query matches at least this many workflows.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("workflow_ids", "query", "namespace")
    ui_color = "#e6efff"

    def __init__(
        self,
        *,
        workflow_ids: str | Sequence[str] | None = None,
        query: str | None = None,
        temporal_conn_id: str = TemporalHook.default_conn_name,
        namespace: str | None = None,
        allowed_failures: Sequence[str] = (),
        min_matches: int = 1,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (workflow_ids is None) == (query is None):
            raise ValueError(f"{self.task_id}: give either workflow_ids or query, not both.")
        unknown = set(allowed_failures) - set(FAILURE_STATUSES)
        if unknown:
            raise ValueError(
                f"{self.task_id}: allowed_failures {sorted(unknown)} not in {tuple(map(str, FAILURE_STATUSES))}."
            )
        self.workflow_ids = workflow_ids
        self.query = query
        self.temporal_conn_id = temporal_conn_id
        self.namespace = namespace
        self.allowed_failures = list(allowed_failures)
        self.min_matches = min_matches
        self.deferrable = deferrable

    def _ids(self) -> list[str]:
        if self.workflow_ids is None:
            return []
        ids = [self.workflow_ids] if isinstance(self.workflow_ids, str) else list(self.workflow_ids)
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise AirflowFailException(
                f"workflow_ids must be non-empty strings, got {self.workflow_ids!r:.300}"
            )
        return ids

    def _finish(self, context: Context, statuses: dict[str, Any]) -> dict[str, Any]:
        failures = failed_statuses(statuses, self.allowed_failures)
        if failures:
            context["ti"].xcom_push(key=STATUSES_XCOM_KEY, value=statuses)
            listed = ", ".join(f"{w} {s}" for w, s in list(failures.items())[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            raise AirflowFailException(
                f"{len(failures)} of {len(statuses)} workflow(s) did not complete: {listed}{more}"
            )
        self.log.info("All %d workflow(s) closed: %s", len(statuses), _tally(statuses))
        return statuses

    def poke(self, context: Context) -> bool | PokeReturnValue:
        hook = TemporalHook(self.temporal_conn_id, namespace=self.namespace or None)
        ids = self._ids()
        with fail_without_retry():
            statuses, pending = hook.run(
                lambda _client: poll_statuses(
                    hook, workflow_ids=ids, query=self.query, min_matches=self.min_matches
                )
            )
        if statuses is None:
            self.log.info("Waiting: %s", pending)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, statuses))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # Check once first: a workflow that already closed needs no trip through the triggerer.
        try:
            done = self.poke(context)
        except AirflowFailException:
            if self.soft_fail:
                raise AirflowSkipException(
                    "Skipping: a workflow did not complete and soft_fail is set"
                ) from None
            raise
        if done:
            return done.xcom_value
        self.defer(
            trigger=TemporalWorkflowTrigger(
                workflow_ids=self._ids(),
                query=self.query,
                temporal_conn_id=self.temporal_conn_id,
                namespace=self.namespace or None,
                poll_interval=self.poke_interval,
                allowed_failures=self.allowed_failures,
                min_matches=self.min_matches,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        statuses = event.get("statuses")
        if statuses is not None:
            return self._finish(context, statuses)
        # No statuses: the trigger itself failed (network, credentials); a retry may help.
        raise AirflowException(f"Waiting for Temporal workflows failed: {event.get('message')}")


def _tally(statuses: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
