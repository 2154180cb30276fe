"""A Kubernetes API emulator on loopback for tests: kmock's ``KubernetesEmulator`` in its own thread.

kmock keeps the objects it is sent and serves them back, but ignores ``labelSelector`` and answers
a pod's ``/log`` with the Pod object. :class:`KubernetesEmulatorThread` adds what the backfill
needs: pod lists filtered by label selector, pod logs set by the test (``previous=true`` too, and
logs that grow between reads), a stand-in Job controller that makes pods for each Job created, and
403 refusals. Every change to the emulator's state runs on its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

JOBS = "batch/v1/jobs"
PODS = "v1/pods"
CRONJOBS = "batch/v1/cronjobs"
# What the stand-in controller does when a Job is created: the pods to make for it.
PodPlan = Callable[[dict[str, Any]], Sequence[Mapping[str, Any]]]
LogSource = str | Callable[[], str]


def matches_selector(labels: Mapping[str, str] | None, selector: str) -> bool:
    """Equality-based label selectors (``a=b,c==d,e!=f``), what ``kubectl -l`` sends most."""
    labels = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


class KubernetesEmulatorThread:
    """kmock's Kubernetes emulator, served on 127.0.0.1 from a thread with its own event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="kubernetes-emulator", daemon=True)
        self.emulator: Any = None
        self.url = ""
        self.logs: dict[tuple[str, str, str | None, bool], LogSource] = {}
        self.pod_plan: PodPlan | None = None
        # The condition ("Complete", "Failed") a created Job gets at once; None: it stays running.
        self.job_condition: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KubernetesEmulatorThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"Kubernetes emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def __enter__(self) -> KubernetesEmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as err:  # surfaced by start()
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        import kmock

        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            emulator[kmock.action.LIST, kmock.resource(PODS)] << self._list_pods
            emulator[kmock.action.FETCH, kmock.resource(PODS), kmock.subresource("log")] << self._pod_log
            # A callable reaction serves every request (a ``>>`` side effect would fire only once).
            emulator[kmock.action.CREATE, kmock.resource(JOBS)] << self._job_created
            self._ready.set()
            await self._stop.wait()

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` on the emulator's event loop (where its state may change) and return its result."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    # -- handlers (on the emulator's loop) ------------------------------------------------------

    def _list_pods(self, request: Any) -> Any:
        selector = request.params.get("labelSelector") or ""
        items = [
            obj.raw
            for (resource, namespace, _name), obj in self.emulator.objects.items()
            if resource == _resource(PODS) and namespace == request.namespace and not obj.deleted
            if matches_selector(obj.raw.get("metadata", {}).get("labels"), selector)
        ]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}

    def _pod_log(self, request: Any) -> bytes:
        previous = request.params.get("previous") in ("true", "True", "1")
        key = (request.namespace, request.name, request.params.get("container"), previous)
        source = self.logs.get(key, self.logs.get((request.namespace, request.name, None, previous), ""))
        return (source() if callable(source) else source).encode()

    def _job_created(self, request: Any) -> Any:
        # kmock stored the Job before any reaction runs: answer with it, as the API server would.
        job = request.data
        namespace = request.namespace or job["metadata"].get("namespace")
        for pod in self.pod_plan(job) if self.pod_plan else ():
            meta = pod["metadata"]
            self.emulator.objects[PODS, meta.get("namespace") or namespace, meta["name"]] = dict(pod)
        stored = self.emulator.objects[JOBS, namespace, job["metadata"]["name"]]
        if self.job_condition:
            stored.patch({"status": {"conditions": [{"type": self.job_condition, "status": "True"}]}})
        return stored.raw

    # -- test set-up (from the test's thread) ---------------------------------------------------

    def kubeconfig(self, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "backfill", "user": {"token": "emulator-token"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "backfill", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
        }

    def connection(self, namespace: str) -> str:
        """The JSON of an Airflow connection of type ``kubernetes`` to the emulator (``AIRFLOW_CONN_*``)."""
        return json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config": self.kubeconfig(namespace), "namespace": namespace},
            }
        )

    def put(self, resource: str, namespace: str, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.run(lambda: self.emulator.objects.__setitem__((resource, namespace, name), dict(obj)))

    def _find(self, resource: str, namespace: str, name: str) -> Any:
        """The emulator's object (on its loop), or ``None``."""
        wanted = _resource(resource)
        for (r, ns, n), obj in self.emulator.objects.items():
            if r == wanted and ns == namespace and n == name and not obj.deleted:
                return obj
        return None

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            obj = self._find(resource, namespace, name)
            return None if obj is None else obj.raw

        return self.run(read)

    def finish_job(self, namespace: str, name: str, condition: str = "Complete") -> None:
        """Give a Job its final condition, as the Job controller does when its pods are done."""
        self.patch(JOBS, namespace, name, {"status": {"conditions": [{"type": condition, "status": "True"}]}})

    def patch(self, resource: str, namespace: str, name: str, changes: Mapping[str, Any]) -> None:
        self.run(lambda: self._find(resource, namespace, name).patch(dict(changes)))

    def names(self, resource: str, namespace: str) -> list[str]:
        return self.run(
            lambda: sorted(
                n
                for (r, ns, n), o in self.emulator.objects.items()
                if r == _resource(resource) and ns == namespace and not o.deleted
            )
        )

    def requests(self, method: str, path_part: str) -> list[Any]:
        """The requests received with this HTTP method whose path contains ``path_part``."""
        return self.run(
            lambda: [
                r for r in list(self.emulator) if r.method.value == method and path_part in str(r.url.path)
            ]
        )

    def forbid(self, method: str, path_part: str, message: str) -> None:
        """Answer every request of ``method`` whose path contains ``path_part`` with 403 Forbidden,
        as an API server's RBAC does (ahead of every other reaction)."""
        import re

        import kmock

        def add() -> None:
            view = self.emulator[method.lower(), re.compile(f".*{re.escape(path_part)}.*")]
            view.override << (lambda: kmock.KubernetesError(status=403, reason="Forbidden", message=message))

        self.run(add)


def _resource(spec: str) -> Any:
    import kmock

    return kmock.resource(spec)


def cronjob(
    name: str,
    namespace: str,
    *,
    containers: Sequence[Mapping[str, Any]],
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A CronJob as the API server returns it, with a uid (ownerReferences need one)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "metadata": {"labels": dict(labels or {"app": name}), "annotations": {"team": "ingestion"}},
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"restartPolicy": "Never", "containers": [dict(c) for c in containers]},
                    },
                },
            },
        },
    }


def pod_for(
    job: Mapping[str, Any],
    suffix: str,
    *,
    phase: str = "Succeeded",
    restarts: int = 0,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A pod of ``job`` as the Job controller would make it (labels ``job-name``, containers, status)."""
    name = job["metadata"]["name"]
    spec = job["spec"]["template"]["spec"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{suffix}",
            "namespace": namespace or job["metadata"].get("namespace"),
            "labels": {**(job["spec"]["template"]["metadata"].get("labels") or {}), "job-name": name},
        },
        "spec": spec,
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": c["name"], "restartCount": restarts} for c in spec["containers"]],
        },
    }
