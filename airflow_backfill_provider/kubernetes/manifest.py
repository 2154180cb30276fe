"""A Job manifest from a CronJob's ``spec.jobTemplate``: what ``kubectl create job --from=cronjob/X``
does, plus env overrides (``kubectl set env``) applied in the same step."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from airflow_backfill_provider.exceptions import ConfigurationError

# kubectl sets this on Jobs it creates from a CronJob: the CronJob controller then leaves them be.
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
MASK = "***"


def job_from_cronjob(
    cronjob: Mapping[str, Any],
    *,
    name: str,
    env: Mapping[str, Any] | None = None,
    container: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job to create: the CronJob's job template under ``name``, owned by the CronJob.

    Like kubectl, the Job keeps the template's labels and annotations, adds the annotation
    ``cronjob.kubernetes.io/instantiate: manual`` and an ownerReference to the CronJob (so deleting
    the CronJob deletes it). ``labels`` go on the Job and on its pods; ``env`` is applied with
    :func:`override_env`.

    :param cronjob: the CronJob as the API server returns it (a dict).
    :param container: the container whose env to override; ``None``: every container.
    """
    meta = cronjob.get("metadata") or {}
    cronjob_name = meta.get("name", "?")
    template = (cronjob.get("spec") or {}).get("jobTemplate")
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise ConfigurationError(
            f"CronJob {cronjob_name} has no spec.jobTemplate.spec: it cannot be the template of a Job."
        )
    template = copy.deepcopy(dict(template))
    spec = template["spec"]
    tmeta = template.get("metadata") or {}
    job_meta: dict[str, Any] = {
        "name": name,
        "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
        "annotations": {
            **(tmeta.get("annotations") or {}),
            INSTANTIATE_ANNOTATION: "manual",
            **(annotations or {}),
        },
    }
    if meta.get("namespace"):
        job_meta["namespace"] = meta["namespace"]
    if meta.get("uid"):
        job_meta["ownerReferences"] = [
            {
                "apiVersion": cronjob.get("apiVersion", "batch/v1"),
                "kind": "CronJob",
                "name": cronjob_name,
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    pod_template = spec.setdefault("template", {})
    pod_meta = pod_template.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **(labels or {})}
    override_env(pod_template.get("spec") or {}, env or {}, container=container, cronjob=cronjob_name)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}


def override_env(
    pod_spec: dict[str, Any], env: Mapping[str, Any], *, container: str | None, cronjob: str = "?"
) -> None:
    """Set ``env`` on ``container`` (or on every container), in place.

    A variable the template already has, as a value or from a secret or config map, is replaced by
    the new value, never listed twice (Kubernetes would use the last one, kubectl the first).
    """
    containers = pod_spec.get("containers") or []
    names = [c.get("name") for c in containers]
    if container is not None and container not in names:
        raise ConfigurationError(
            f"Container {container!r} is not in the job template of CronJob {cronjob}: its containers are "
            f"{names}. Set container to one of them, or leave it empty to override every container."
        )
    bad = [k for k, v in env.items() if not isinstance(k, str) or not k or v is None]
    if bad:
        raise ConfigurationError(f"Env overrides need a name and a value each, got {bad!r} without.")
    for c in containers:
        if container is not None and c.get("name") != container:
            continue
        kept = [e for e in c.get("env") or [] if e.get("name") not in env]
        c["env"] = kept + [{"name": k, "value": str(v)} for k, v in env.items()]


def masked(
    manifest: Mapping[str, Any],
    shown: set[str] | frozenset[str] = frozenset(),
    *,
    container: str | None = None,
) -> dict[str, Any]:
    """A copy to log: every literal env value hidden except our overrides.

    A job template may carry a password as a literal env value; a log line must not. ``shown`` (the
    override names) stay readable only where :func:`override_env` set them: in ``container``, or in
    every container when it is ``None``; never in init containers. A sidecar's own variable of the
    same name is the template's literal, and stays hidden.
    """
    out = copy.deepcopy(dict(manifest))
    pod_spec = ((out.get("spec") or {}).get("template") or {}).get("spec") or {}
    for kind in ("containers", "initContainers"):
        for c in pod_spec.get(kind) or []:
            overridden = kind == "containers" and container in (None, c.get("name"))
            for e in c.get("env") or []:
                if "value" in e and not (overridden and e.get("name") in shown):
                    e["value"] = MASK
    return out


def containers_of(manifest: Mapping[str, Any]) -> list[str]:
    pod_spec = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c.get("name", "?") for c in pod_spec.get("containers") or []]


def job_state(job: Mapping[str, Any]) -> str | None:
    """``"Complete"`` or ``"Failed"`` once the Job has that condition, else ``None`` (still running)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and str(cond.get("status")) == "True":
            return cond["type"]
    return None
