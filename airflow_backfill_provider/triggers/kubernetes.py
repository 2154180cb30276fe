"""Wait, in the triggerer, for a Kubernetes Job to finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_backfill_provider.kubernetes.errors import api_error


def conditions_state(conditions: Any) -> str | None:
    """``"Complete"`` or ``"Failed"`` from a Job's status conditions (SDK objects), else ``None``."""
    for cond in conditions or []:
        if cond.type in ("Complete", "Failed") and str(cond.status) == "True":
            return cond.type
    return None


class KubernetesJobCompleteTrigger(BaseTrigger):
    """
    Fire once a Job has the condition ``Complete`` or ``Failed``.

    The event is ``{"status": "success"|"error", "message", "job_name", "namespace", "job_state"}``:
    ``success`` with ``job_state`` ``Complete`` or ``Failed`` (the operator decides what a failed
    Job means), ``error`` when the Job cannot be read (``job_state`` ``None``). Polling only reads,
    so running the trigger twice (triggerer restart) changes nothing.

    :param job_name: the Job.
    :param namespace: its namespace.
    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` for its cluster.
    :param cluster: the cluster's name, for messages.
    :param poll_interval: seconds between reads.
    :param delete_on_kill: delete the Job (its pods follow) when a user kills the deferred task.
    """

    def __init__(
        self,
        *,
        job_name: str,
        namespace: str,
        kubernetes_conn_id: str,
        cluster: str | None = None,
        poll_interval: float = 10.0,
        delete_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.cluster = cluster or kubernetes_conn_id
        self.poll_interval = float(poll_interval)
        self.delete_on_kill = bool(delete_on_kill)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "namespace": self.namespace,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "cluster": self.cluster,
                "poll_interval": self.poll_interval,
                "delete_on_kill": self.delete_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ids = {"job_name": self.job_name, "namespace": self.namespace}
        try:
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
            from kubernetes_asyncio.client.exceptions import ApiException

            hook = AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)
            while True:
                try:
                    job = await hook.get_job_status(self.job_name, self.namespace)
                except ApiException as err:
                    raise api_error(
                        err.status, verb="get", resource="jobs", name=self.job_name, namespace=self.namespace,
                        cluster=self.cluster, conn_id=self.kubernetes_conn_id, message=err.reason,
                    ) from err  # fmt: skip
                state = conditions_state(job.status.conditions if job.status else None)
                if state:
                    break
                self.log.info("Job %s in %s is still running", self.job_name, self.namespace)
                await asyncio.sleep(self.poll_interval)
            yield TriggerEvent({**ids, "status": "success", "job_state": state, "message": f"Job {state}"})
        except Exception as err:
            # Any exception becomes an error event, so the task fails with the reason in its log.
            yield TriggerEvent(
                {**ids, "status": "error", "job_state": None, "message": f"{type(err).__name__}: {err}"}
            )

    async def on_kill(self) -> None:
        """The task was killed while deferred: delete the Job, as the operator's ``on_kill`` does."""
        if not self.delete_on_kill:
            return
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
        from kubernetes_asyncio import client as async_client

        self.log.info("Task killed: deleting Job %s in namespace %s", self.job_name, self.namespace)
        try:
            async with AsyncKubernetesHook(conn_id=self.kubernetes_conn_id).get_conn() as api:
                await async_client.BatchV1Api(api).delete_namespaced_job(
                    self.job_name, self.namespace, propagation_policy="Background"
                )
        except Exception as err:
            self.log.warning("Could not delete Job %s: %s", self.job_name, err)
