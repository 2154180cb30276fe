"""Kubernetes API errors as messages that say which object, on which cluster, and what to do."""

from __future__ import annotations

from airflow_backfill_provider.exceptions import BackfillProviderError, ConfigurationError

DOCS_RBAC = "docs/kubernetes.md#rbac"
RBAC_RULES = "get cronjobs; create, get and delete jobs; list pods; get pods/log"


class KubernetesApiError(BackfillProviderError):
    """A call the API server failed for a reason a retry may fix (timeouts, 5xx, conflicts)."""


class KubernetesForbiddenError(ConfigurationError):
    """403: the connection's identity may not do this. Retrying will not help; RBAC will."""


class KubernetesUnauthorizedError(ConfigurationError):
    """401: the connection's credentials were refused."""


class KubernetesObjectNotFoundError(ConfigurationError):
    """404 for an object the backfill needs (the CronJob)."""


def api_error(
    status: int | None,
    *,
    verb: str,
    resource: str,
    name: str | None,
    namespace: str,
    cluster: str,
    conn_id: str,
    message: str | None = None,
) -> BackfillProviderError:
    """The exception for a failed call ``verb resource/name`` (``status`` as the API answered)."""
    what = f"{resource}/{name}" if name else resource
    where = f"in namespace {namespace} on cluster {cluster} (connection {conn_id!r})"
    said = f": {message}" if message else ""
    if status == 403:
        return KubernetesForbiddenError(
            f"Kubernetes refused to {verb} {what} {where} (403 Forbidden, RBAC){said}. The connection's "
            f"service account needs a Role in namespace {namespace} allowing {RBAC_RULES}, bound to it; "
            f"{DOCS_RBAC} has a ready manifest."
        )
    if status == 401:
        return KubernetesUnauthorizedError(
            f"Kubernetes rejected the credentials of connection {conn_id!r} for cluster {cluster} "
            f"(401 Unauthorized) while trying to {verb} {what}{said}. Renew the token or kube config."
        )
    if status == 404 and resource == "cronjobs":
        return KubernetesObjectNotFoundError(
            f"CronJob {name} not found {where}. Check its name (`kubectl get cronjobs -n {namespace}`) and "
            "the namespace (the config's or the connection's)."
        )
    return KubernetesApiError(f"Kubernetes failed to {verb} {what} {where} (status {status}){said}")
