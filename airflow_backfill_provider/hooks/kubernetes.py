"""Kubernetes: read a CronJob, create, read and delete Jobs, list their pods and read pod logs.

Composes the cncf-kubernetes provider's ``KubernetesHook`` (connection type ``kubernetes``, one
connection per cluster): it owns the connection and the API client; this adds the calls a
Job-from-CronJob backfill needs, on plain dicts, and turns API errors into messages that name the
object, the namespace, the cluster and what to do (see :mod:`airflow_backfill_provider.kubernetes.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.kubernetes.errors import api_error

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

T = TypeVar("T")
DEFAULT_NAMESPACE = "default"


def _status_message(err: Any) -> str | None:
    """The ``message`` of the Status object an API error carries, if any."""
    try:
        return json.loads(err.body).get("message")
    except (TypeError, ValueError, AttributeError):
        return getattr(err, "reason", None)


def missing_connection(conn_id: str, cluster: str, kind: str = "kubernetes") -> ConfigurationError:
    env = "AIRFLOW_CONN_" + conn_id.upper()
    return ConfigurationError(
        f"Cluster {cluster} has no Airflow connection {conn_id!r} (type {kind}). Create it (UI, "
        f"`airflow connections add`, or the variable {env}), or set {kind}_conn_id for the cluster in "
        "the backfill config."
    )


class KubernetesJobsClient:
    """
    The API calls of a Job-from-CronJob backfill on one cluster.

    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` for this cluster.
    :param namespace: namespace of the CronJob and the Jobs; default the connection's, else
        ``default``.
    :param cluster: the cluster's name in messages (default: the connection id).
    """

    def __init__(self, kubernetes_conn_id: str, *, namespace: str | None = None, cluster: str | None = None):
        self.kubernetes_conn_id = kubernetes_conn_id
        self.cluster = cluster or kubernetes_conn_id
        self._namespace = namespace or None

    @cached_property
    def hook(self) -> KubernetesHook:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def check_connection(self) -> None:
        """Fail with a message naming the cluster when its connection does not exist."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            self.hook.get_connection(self.kubernetes_conn_id)
        except AirflowNotFoundException as err:
            raise missing_connection(self.kubernetes_conn_id, self.cluster) from err

    @cached_property
    def namespace(self) -> str:
        return self._namespace or self.hook.get_namespace() or DEFAULT_NAMESPACE

    def _error(self, err: Any, verb: str, resource: str, name: str | None) -> Exception:
        return api_error(
            getattr(err, "status", None),
            verb=verb,
            resource=resource,
            name=name,
            namespace=self.namespace,
            cluster=self.cluster,
            conn_id=self.kubernetes_conn_id,
            message=_status_message(err),
        )

    def _call(self, verb: str, resource: str, name: str | None, fn: Callable[[], T]) -> T:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as err:
            raise self._error(err, verb, resource, name) from err

    @staticmethod
    def _json(response: Any) -> Any:
        # _preload_content=False: the object exactly as the server sent it, unknown fields included.
        return json.loads(response.data)

    # -- CronJobs and Jobs ----------------------------------------------------------------------

    def read_cronjob(self, name: str) -> dict[str, Any]:
        batch = self.hook.batch_v1_client
        return self._call(
            "get",
            "cronjobs",
            name,
            lambda: self._json(batch.read_namespaced_cron_job(name, self.namespace, _preload_content=False)),
        )

    def read_job(self, name: str) -> dict[str, Any] | None:
        """The Job, or ``None`` when there is none of that name."""
        from kubernetes.client.exceptions import ApiException

        batch = self.hook.batch_v1_client
        try:
            return self._json(batch.read_namespaced_job(name, self.namespace, _preload_content=False))
        except ApiException as err:
            if err.status == 404:
                return None
            raise self._error(err, "get", "jobs", name) from err

    def create_job(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the Job, or find the one of that name a previous try created: ``(job, created)``."""
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        batch = self.hook.batch_v1_client
        try:
            created = batch.create_namespaced_job(self.namespace, manifest, _preload_content=False)
            return self._json(created), True
        except ApiException as err:
            if err.status != 409:
                raise self._error(err, "create", "jobs", name) from err
        existing = self.read_job(name)
        if existing is None:  # deleted between the two calls: a retry creates it again
            raise api_error(409, verb="create", resource="jobs", name=name, namespace=self.namespace,
                            cluster=self.cluster, conn_id=self.kubernetes_conn_id)  # fmt: skip
        return existing, False

    def delete_job(self, name: str) -> None:
        """Delete the Job, then its pods at once.

        The Job goes with background propagation, so the garbage collector removes its pods in any
        case; deleting them here stops them now. Without RBAC to delete pods, that part is skipped.
        """
        from kubernetes.client.exceptions import ApiException

        batch, core = self.hook.batch_v1_client, self.hook.core_v1_client
        try:
            batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise self._error(err, "delete", "jobs", name) from err
        for pod in self.list_job_pods(name):
            pod_name = pod["metadata"]["name"]
            try:
                core.delete_namespaced_pod(pod_name, self.namespace)
            except ApiException as err:
                if err.status not in (403, 404):
                    raise self._error(err, "delete", "pods", pod_name) from err

    # -- pods and logs --------------------------------------------------------------------------

    def list_job_pods(self, job_name: str) -> list[dict[str, Any]]:
        """The Job's pods (label ``job-name``, which the Job controller sets), oldest first."""
        core = self.hook.core_v1_client
        listed = self._call(
            "list",
            "pods",
            None,
            lambda: self._json(
                core.list_namespaced_pod(
                    self.namespace, label_selector=f"job-name={job_name}", _preload_content=False
                )
            ),
        )
        pods = listed.get("items") or []
        return sorted(
            pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
        )

    def read_pod_log(self, pod: str, container: str | None = None, *, previous: bool = False) -> str:
        core = self.hook.core_v1_client
        kwargs: dict[str, Any] = {"_preload_content": False}
        if container:
            kwargs["container"] = container
        if previous:
            kwargs["previous"] = True
        response = self._call(
            "get", "pods/log", pod, lambda: core.read_namespaced_pod_log(pod, self.namespace, **kwargs)
        )
        return response.data.decode("utf-8", errors="replace")
