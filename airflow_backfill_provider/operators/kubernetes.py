"""Create a Kubernetes Job from a CronJob's template, and collect the workflow ids its pods log."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_backfill_provider.exceptions import fail_without_retry
from airflow_backfill_provider.kubernetes.errors import KubernetesApiError
from airflow_backfill_provider.kubernetes.logs import (
    DEFAULT_FIELDS,
    DEFAULT_PATTERN,
    NoMatchingLogLineError,
    PodScan,
    compile_pattern,
    no_match_message,
    parse_lines,
    scan_done,
    unique,
)
from airflow_backfill_provider.kubernetes.manifest import containers_of, job_from_cronjob, job_state, masked
from airflow_backfill_provider.kubernetes.names import job_name as deterministic_job_name
from airflow_backfill_provider.kubernetes.names import label_value
from airflow_backfill_provider.triggers.kubernetes import KubernetesJobCompleteTrigger
from airflow_backfill_provider.utils import as_bool

if TYPE_CHECKING:
    from airflow_backfill_provider.hooks.kubernetes import KubernetesJobsClient
    import re

    from airflow.sdk import Context

JOB_XCOM_KEY = "job"
# The full ids (label values are cut and cleaned); the run id also tells a retry its own Job.
RUN_ID_ANNOTATION = "airflow-backfill-provider/run-id"
DAG_ID_ANNOTATION = "airflow-backfill-provider/dag-id"
FINISHED_PHASES = ("Succeeded", "Failed")


class KubernetesJobFromCronJobOperator(BaseOperator):
    """
    Create a Job from a CronJob's ``spec.jobTemplate`` (``kubectl create job --from=cronjob/X``),
    with env overrides, then return the workflow ids its pods log.

    The Job gets the annotation ``cronjob.kubernetes.io/instantiate: manual``, an ownerReference to
    the CronJob, labels naming the DAG, the run, the task and the customer, and a deterministic name
    (from the DAG, task, run, cluster and customer) of at most 63 characters: a retried task finds
    the Job its first try created and reads its logs instead of creating a second one.

    Returns ``[{"job_resource_name", "workflow_id", "cluster"}]``, one per workflow the pods logged
    (the lines matching ``log_pattern``, restarted containers and several pods included); the Job
    itself is in the XCom ``job``.

    :param cronjob_name: the CronJob whose template to use. (templated)
    :param kubernetes_conn_id: Airflow connection of type ``kubernetes`` for the cluster.
    :param namespace: namespace of the CronJob and the Job; default the connection's. (templated)
    :param cluster: the cluster's name in labels, results and messages (default: the connection
        id). (templated)
    :param customer: the customer the Job is for, as a label and in the Job's name. (templated)
    :param env: variables to set, e.g. ``{"REINDEX_START_TIME": "{{ data_interval_start }}"}``;
        an existing one is replaced, not duplicated. (templated)
    :param container: the container to set them on; ``None``: every container. (templated)
    :param job_name: the Job's name instead of the deterministic one. (templated)
    :param labels: more labels for the Job and its pods. (templated)
    :param dry_run: render and log the manifest (literal env values of the template masked), create
        nothing, return ``[]``. (templated)
    :param wait_for_completion: wait until the Job is Complete (fail if it Failed) before reading
        the logs; otherwise read them as soon as each pod logged its line.
    :param deferrable: wait for completion in the triggerer.
    :param poll_interval: seconds between reads of the Job and its logs.
    :param log_pattern: the line naming a workflow: printf-style with one ``%s`` per field of
        ``log_fields``, or a regular expression with ``(?P<workflow_id>...)``.
    :param log_fields: what the ``%s`` of ``log_pattern`` stand for, in order.
    :param log_timeout: seconds to wait for the matching lines once the Job exists.
    :param scrape_logs: read the logs at all (off: return ``[]`` once the Job is created).
    :param delete_on_kill: delete the Job and its pods when the task is killed.
    """

    template_fields: Sequence[str] = (
        "cronjob_name",
        "namespace",
        "cluster",
        "customer",
        "env",
        "container",
        "job_name",
        "labels",
        "dry_run",
    )
    template_fields_renderers = {"env": "json", "labels": "json"}
    ui_color = "#e3f0fa"

    def __init__(
        self,
        *,
        cronjob_name: str,
        kubernetes_conn_id: str = "kubernetes_default",
        namespace: str | None = None,
        cluster: str | None = None,
        customer: str | None = None,
        env: Mapping[str, Any] | None = None,
        container: str | None = None,
        job_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        dry_run: bool | str = False,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        log_pattern: str = DEFAULT_PATTERN,
        log_fields: Sequence[str] = DEFAULT_FIELDS,
        log_timeout: float = 600.0,
        scrape_logs: bool = True,
        delete_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cronjob_name = cronjob_name
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.cluster = cluster
        self.customer = customer
        self.env = env
        self.container = container
        self.job_name = job_name
        self.labels = labels
        self.dry_run = dry_run
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.log_pattern = log_pattern
        self.log_fields = list(log_fields)
        self.log_timeout = log_timeout
        self.scrape_logs = scrape_logs
        self.delete_on_kill = delete_on_kill
        self._created_job: tuple[KubernetesJobsClient, str] | None = None

    # -- helpers --------------------------------------------------------------------------------

    def _client(self) -> KubernetesJobsClient:
        from airflow_backfill_provider.hooks.kubernetes import KubernetesJobsClient

        return KubernetesJobsClient(
            self.kubernetes_conn_id, namespace=self.namespace or None, cluster=self.cluster or None
        )

    def _name(self, context: Context) -> str:
        if self.job_name:
            return self.job_name
        ti = context["ti"]
        prefix = f"{self.cronjob_name}-{self.customer}" if self.customer else self.cronjob_name
        # The map index stands in for the customer only when none is given.
        who = self.customer or str(getattr(ti, "map_index", -1))
        return deterministic_job_name(prefix, ti.dag_id, ti.task_id, ti.run_id, self.cluster or "", who)

    def _labels(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        labels = {
            "airflow-dag-id": label_value(ti.dag_id),
            "airflow-task-id": label_value(ti.task_id),
            "airflow-run-id": label_value(ti.run_id),
        }
        if self.customer:
            labels["backfill-customer"] = label_value(self.customer)
        return {**labels, **(self.labels or {})}

    def _regex(self) -> re.Pattern[str]:
        return compile_pattern(self.log_pattern, self.log_fields)

    # -- execute --------------------------------------------------------------------------------

    def execute(self, context: Context) -> list[dict[str, Any]]:
        client = self._client()
        with fail_without_retry():
            dry_run = as_bool(self.dry_run, "dry_run")
            regex = self._regex() if self.scrape_logs else None
            client.check_connection()
            name = self._name(context)
            cronjob = client.read_cronjob(self.cronjob_name)
            ti = context["ti"]
            manifest = job_from_cronjob(
                cronjob,
                name=name,
                env=self.env or {},
                container=self.container or None,
                labels=self._labels(context),
                annotations={RUN_ID_ANNOTATION: ti.run_id, DAG_ID_ANNOTATION: ti.dag_id},
            )
            manifest["metadata"]["namespace"] = client.namespace
        where = f"namespace {client.namespace} of cluster {client.cluster}"
        if dry_run:
            self.log.info(
                "Dry run: would create Job %s in %s from CronJob %s (containers %s; template env values "
                "other than the overrides shown as ***):\n%s",
                name, where, self.cronjob_name, containers_of(manifest),
                json.dumps(
                    masked(manifest, set(self.env or {}), container=self.container or None), indent=2, sort_keys=True
                ),
            )  # fmt: skip
            context["ti"].xcom_push(
                key=JOB_XCOM_KEY, value=self._job_record(client, name, created=False, dry_run=True)
            )
            return []
        with fail_without_retry():
            job, created = client.create_job(manifest)
        owner = ((job.get("metadata") or {}).get("annotations") or {}).get(RUN_ID_ANNOTATION)
        if not created and owner != ti.run_id:
            raise AirflowFailException(
                f"Job {name} already exists in {where} but was not created for this run ({RUN_ID_ANNOTATION}: "
                f"{owner!r}, this run: {ti.run_id!r}). Give the task another job_name, or delete that Job."
            )
        self._created_job = (client, name)
        self.log.info(
            "%s Job %s in %s from CronJob %s (env %s)",
            "Created" if created else "Re-attached to the existing", name, where, self.cronjob_name,
            ", ".join(sorted(self.env or {})) or "unchanged",
        )  # fmt: skip
        context["ti"].xcom_push(key=JOB_XCOM_KEY, value=self._job_record(client, name, created=created))
        if self.wait_for_completion:
            state = job_state(job)
            if state is None and self.deferrable:
                self.defer(
                    trigger=KubernetesJobCompleteTrigger(
                        job_name=name,
                        namespace=client.namespace,
                        kubernetes_conn_id=self.kubernetes_conn_id,
                        cluster=client.cluster,
                        poll_interval=self.poll_interval,
                        delete_on_kill=self.delete_on_kill,
                    ),
                    method_name="execute_complete",
                    timeout=self.execution_timeout,
                )
            while state is None:
                time.sleep(self.poll_interval)
                job = client.read_job(name)
                if job is None:
                    raise AirflowException(f"Job {name} in {where} was deleted while the task waited for it.")
                state = job_state(job)
            self._check_state(name, where, state)
        return self._collect(client, name, regex)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        client = self._client()
        name = event["job_name"]
        if event.get("status") != "success":
            # The trigger could not read the Job (network, credentials): a retry re-attaches.
            raise AirflowException(f"Waiting for Job {name} failed: {event.get('message')}")
        where = f"namespace {client.namespace} of cluster {client.cluster}"
        self._check_state(name, where, event["job_state"])
        with fail_without_retry():
            regex = self._regex() if self.scrape_logs else None
        return self._collect(client, name, regex)

    def _check_state(self, name: str, where: str, state: str) -> None:
        if state == "Failed":
            raise AirflowFailException(
                f"Job {name} in {where} failed: see `kubectl describe job/{name}` and its pods' logs. "
                "A retry would find the same failed Job: delete it (`kubectl delete job`) and clear the "
                "task to create it again."
            )
        self.log.info("Job %s in %s is %s", name, where, state)

    def _job_record(
        self, client: KubernetesJobsClient, name: str, *, created: bool, dry_run: bool = False
    ) -> dict:
        return {
            "job_name": name,
            "namespace": client.namespace,
            "cluster": client.cluster,
            "customer": self.customer,
            "cronjob": self.cronjob_name,
            "created": created,
            "dry_run": dry_run,
        }

    # -- logs -----------------------------------------------------------------------------------

    def _collect(self, client: KubernetesJobsClient, name: str, regex: re.Pattern[str] | None) -> list[dict]:
        if regex is None:
            return []
        with fail_without_retry():
            found = self._scrape(client, name, regex)
        for entry in found:
            entry["cluster"] = entry.get("cluster") or client.cluster
        self.log.info(
            "Job %s logged %d workflow(s): %s%s",
            name, len(found), ", ".join(f["workflow_id"] for f in found[:10]), " …" if len(found) > 10 else "",
        )  # fmt: skip
        return found

    def _scrape(self, client: KubernetesJobsClient, name: str, regex: re.Pattern[str]) -> list[dict]:
        deadline = time.monotonic() + self.log_timeout
        while True:
            job = client.read_job(name)
            finished = job is None or job_state(job) is not None
            scans = [self._scan_pod(client, pod, regex) for pod in client.list_job_pods(name)]
            if scan_done(scans, job_finished=finished):
                why = "the Job has finished" if finished else "every running pod logged its line"
                break
            if time.monotonic() >= deadline:
                why = f"gave up waiting after {self.log_timeout:g}s"
                break
            time.sleep(self.poll_interval)
        found = unique(f for s in scans for f in s.found)
        if not found:
            raise NoMatchingLogLineError(
                no_match_message(name, client.namespace, scans, self.log_pattern, why)
            )
        for s in scans:
            if not s.found:
                self.log.warning(
                    "Pod %s of Job %s logged no matching line (%d lines read)", s.pod, name, s.lines
                )
        return found

    def _scan_pod(
        self, client: KubernetesJobsClient, pod: Mapping[str, Any], regex: re.Pattern[str]
    ) -> PodScan:
        pod_name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        scan = PodScan(pod=pod_name, finished=phase in FINISHED_PHASES)
        if phase == "Pending":
            return scan  # no container has started: no logs yet
        restarts = {
            s.get("name"): s.get("restartCount", 0)
            for s in (pod.get("status") or {}).get("containerStatuses") or []
        }
        names = [self.container] if self.container else [c["name"] for c in pod["spec"]["containers"]]
        for container in names:
            texts = []
            if restarts.get(container):
                # The container restarted: its previous run's log is final, and may name workflows too.
                texts.append((self._read(client, pod_name, container, scan, previous=True), True))
            texts.append((self._read(client, pod_name, container, scan), scan.finished))
            for i, (text, complete) in enumerate(texts):
                scan.lines += text.count("\n")
                found = parse_lines(text, regex, complete=complete)
                scan.found += found
                scan.current = scan.current or bool(found and i == len(texts) - 1)
        return scan

    @staticmethod
    def _read(
        client: KubernetesJobsClient, pod: str, container: str, scan: PodScan, *, previous: bool = False
    ) -> str:
        try:
            return client.read_pod_log(pod, container if container else None, previous=previous)
        except KubernetesApiError:
            if scan.finished:
                raise
            return ""  # a container still starting has no log to read yet (400): read it next time

    # -- kill -----------------------------------------------------------------------------------

    def on_kill(self) -> None:
        if not (self.delete_on_kill and self._created_job):
            return
        client, name = self._created_job
        self.log.info("Task killed: deleting Job %s and its pods in namespace %s", name, client.namespace)
        try:
            client.delete_job(name)
        except Exception as err:
            self.log.warning("Could not delete Job %s: %s", name, err)
