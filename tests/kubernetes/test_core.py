"""The pure core of the Kubernetes domain: names, the Job manifest, log lines, the config, tracking."""

from __future__ import annotations

import re

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.kubernetes import config as cfg
from airflow_backfill_provider.kubernetes.errors import (
    KubernetesApiError,
    KubernetesForbiddenError,
    KubernetesObjectNotFoundError,
    api_error,
)
from airflow_backfill_provider.kubernetes.logs import (
    DEFAULT_PATTERN,
    PodScan,
    compile_pattern,
    parse_lines,
    scan_done,
    unique,
)
from airflow_backfill_provider.kubernetes.manifest import job_from_cronjob, job_state, masked, override_env
from airflow_backfill_provider.kubernetes.names import job_name, label_value
from airflow_backfill_provider.testing.kubernetes import cronjob, matches_selector
from airflow_backfill_provider.workflows.tracking import failure_message, tracking_document

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


# -- names ----------------------------------------------------------------------------------------


def test_job_name_is_deterministic_dns_1123_and_short():
    long_prefix = "cron-batch-reindex-conversations-" + "Customer_With.Odd:Chars" * 5
    a = job_name(
        long_prefix, "k8s_job_backfill", "create_job", "manual__2026-01-01T00:00:00+00:00", "us", "x"
    )
    assert a == job_name(
        long_prefix, "k8s_job_backfill", "create_job", "manual__2026-01-01T00:00:00+00:00", "us", "x"
    )
    assert len(a) <= 63 and DNS_1123.match(a), a
    assert a.startswith("cron-batch-reindex-conversations-customer-with-odd-c") and len(a) == 63
    # another run, cluster or customer: another Job
    assert a != job_name(
        long_prefix, "k8s_job_backfill", "create_job", "manual__2026-01-02T00:00:00+00:00", "us", "x"
    )
    assert a != job_name(
        long_prefix, "k8s_job_backfill", "create_job", "manual__2026-01-01T00:00:00+00:00", "eu", "x"
    )
    assert DNS_1123.match(job_name("---", "x"))


@pytest.mark.parametrize(
    "value", ["sunbit", "manual__2026-01-01T00:00:00+00:00", "x" * 80, "-a-", "ok.value_1", "!!!"]
)
def test_label_values_are_valid_and_distinct(value):
    out = label_value(value)
    assert len(out) <= 63 and LABEL.match(out), out
    if LABEL.match(value) and len(value) <= 63:
        assert out == value
    assert label_value("a:b") != label_value("a+b")


# -- manifest -------------------------------------------------------------------------------------


def _cronjob(**kw):
    containers = [
        {"name": "reindex", "image": "reindex:1", "env": [
            {"name": "REINDEX_START_TIME", "value": "old"},
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "RUN_ONLY_FOR_CUSTOMER_IDS", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        ]},
        {"name": "sidecar", "image": "proxy:1"},
    ]  # fmt: skip
    return cronjob("cron-batch-reindex-conversations", "cresta-cron", containers=containers, **kw)


def test_job_from_cronjob_copies_the_template_and_owns_it():
    cj = _cronjob()
    env = {"REINDEX_START_TIME": "2026-01-01T00:00:00+00:00", "RUN_ONLY_FOR_CUSTOMER_IDS": "sunbit"}
    job = job_from_cronjob(
        cj, name="j-1", env=env, container="reindex", labels={"backfill-customer": "sunbit"}
    )
    meta = job["metadata"]
    assert (job["kind"], meta["name"], meta["namespace"]) == ("Job", "j-1", "cresta-cron")
    assert meta["annotations"] == {"team": "ingestion", "cronjob.kubernetes.io/instantiate": "manual"}
    assert meta["labels"] == {"app": "cron-batch-reindex-conversations", "backfill-customer": "sunbit"}
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "cron-batch-reindex-conversations",
        "uid": cj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    assert job["spec"]["template"]["metadata"]["labels"]["backfill-customer"] == "sunbit"
    reindex, sidecar = job["spec"]["template"]["spec"]["containers"]
    assert reindex["env"] == [
        {"name": "DB_PASSWORD", "value": "hunter2"},
        {"name": "REINDEX_START_TIME", "value": "2026-01-01T00:00:00+00:00"},
        {"name": "RUN_ONLY_FOR_CUSTOMER_IDS", "value": "sunbit"},
    ]
    assert "env" not in sidecar
    # the CronJob itself is untouched
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "old"
    assert job_state(job) is None


def test_env_overrides_go_to_every_container_without_a_name_and_never_duplicate():
    pod = {
        "containers": [
            {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}]},
            {"name": "b"},
        ]
    }
    override_env(pod, {"X": 3, "Y": "y"}, container=None)
    assert [c["env"] for c in pod["containers"]] == [
        [{"name": "X", "value": "3"}, {"name": "Y", "value": "y"}]
    ] * 2


def test_unknown_container_names_the_containers():
    with pytest.raises(ConfigurationError, match=r"Container 'worker' is not in the job template of CronJob "
                       r"cron-batch-reindex-conversations: its containers are \['reindex', 'sidecar'\]"):  # fmt: skip
        job_from_cronjob(_cronjob(), name="j", env={"A": "1"}, container="worker")


def test_a_cronjob_without_a_job_template_is_refused():
    with pytest.raises(ConfigurationError, match="no spec.jobTemplate.spec"):
        job_from_cronjob({"metadata": {"name": "x"}, "spec": {}}, name="j")


def test_masked_hides_literal_env_values_except_the_overrides():
    job = job_from_cronjob(_cronjob(), name="j", env={"REINDEX_START_TIME": "t0"}, container="reindex")
    shown = masked(job, {"REINDEX_START_TIME"})
    env = {e["name"]: e.get("value") for e in shown["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"DB_PASSWORD": "***", "REINDEX_START_TIME": "t0", "RUN_ONLY_FOR_CUSTOMER_IDS": None}
    assert "hunter2" not in repr(shown) and "hunter2" in repr(job)


def test_an_override_name_is_shown_only_in_the_container_it_overrides():
    """A sidecar's own literal of an override's name is the template's value: it stays hidden, as
    in every container and init container the override does not target (issue 17, item 2)."""
    cj = _cronjob()
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["containers"][1]["env"] = [
        {"name": "REINDEX_START_TIME", "value": "sidecar-secret-1"},
        {"name": "PROXY_TOKEN", "value": "sidecar-secret-2"},
    ]
    pod["initContainers"] = [
        {"name": "init", "env": [{"name": "REINDEX_START_TIME", "value": "init-secret"}]}
    ]
    env = {"REINDEX_START_TIME": "t0"}
    job = job_from_cronjob(cj, name="j", env=env, container="reindex")
    shown = masked(job, set(env), container="reindex")
    containers = shown["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in containers[0]["env"] if "value" in e} == {
        "DB_PASSWORD": "***",
        "REINDEX_START_TIME": "t0",
    }
    assert {e["name"]: e["value"] for e in containers[1]["env"]} == {
        "REINDEX_START_TIME": "***",
        "PROXY_TOKEN": "***",
    }
    assert shown["spec"]["template"]["spec"]["initContainers"][0]["env"] == [
        {"name": "REINDEX_START_TIME", "value": "***"}
    ]
    assert "secret" not in repr(shown)
    # No container named: the override went into every container, and shows in every one.
    everywhere = masked(job_from_cronjob(cj, name="j", env=env), set(env))
    assert [
        [e["value"] for e in c["env"] if e["name"] == "REINDEX_START_TIME"]
        for c in everywhere["spec"]["template"]["spec"]["containers"]
    ] == [["t0"], ["t0"]]


def test_job_state_reads_the_final_conditions():
    assert job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "Complete"
    assert job_state({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "Failed"
    assert job_state({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}}) is None


# -- logs -----------------------------------------------------------------------------------------

LINE = "Created reindex conversations job: name=customers/sunbit/profiles/default/jobs/j1, execution_id={}, cluster=us-east-1-prod"


def test_the_seed_line_parses_into_its_three_fields():
    regex = compile_pattern(DEFAULT_PATTERN)
    text = (
        "starting\n"
        + "2026/01/01 INFO "
        + LINE.format("reindexconversations-sunbit-us-east-1-a60e")
        + "\nbye\n"
    )
    assert parse_lines(text, regex, complete=True) == [
        {
            "job_resource_name": "customers/sunbit/profiles/default/jobs/j1",
            "workflow_id": "reindexconversations-sunbit-us-east-1-a60e",
            "cluster": "us-east-1-prod",
        }
    ]


def test_a_line_still_being_written_waits_for_its_newline():
    regex = compile_pattern(DEFAULT_PATTERN)
    partial = LINE.format("wf-1")[:-4]  # "cluster=us-east-1-p": not the whole cluster name yet
    assert parse_lines("x\n" + partial, regex, complete=False) == []
    assert parse_lines("x\n" + LINE.format("wf-1"), regex, complete=True)[0]["cluster"] == "us-east-1-prod"


def test_regex_patterns_and_bad_patterns():
    regex = compile_pattern(r"started (?P<workflow_id>\S+)")
    assert parse_lines("started wf-9\n", regex, complete=True) == [
        {"job_resource_name": None, "workflow_id": "wf-9", "cluster": None}
    ]
    with pytest.raises(ConfigurationError, match="no \\(\\?P<workflow_id>"):
        compile_pattern(r"started (?P<id>\S+)")
    with pytest.raises(ConfigurationError, match="has 1 %s but the fields are"):
        compile_pattern("started %s")


def test_unique_and_scan_rules():
    assert [
        e["workflow_id"] for e in unique([{"workflow_id": "a"}, {"workflow_id": "b"}, {"workflow_id": "a"}])
    ] == ["a", "b"]
    running_silent = PodScan("p1", finished=False)
    running_found = PodScan("p2", finished=False, found=[{"workflow_id": "a"}], current=True)
    # found only in a restarted container's previous run: its current run may log more
    restarted = PodScan("p4", finished=False, found=[{"workflow_id": "b"}])
    finished_silent = PodScan("p3", finished=True)
    assert not scan_done([running_silent], job_finished=False)
    assert not scan_done([running_found, running_silent], job_finished=False)
    assert scan_done([running_found, finished_silent], job_finished=False)
    assert not scan_done([running_found, restarted], job_finished=False)
    assert scan_done([running_silent], job_finished=True)


def test_label_selectors_of_the_emulator():
    assert matches_selector({"job-name": "j", "a": "b"}, "job-name=j")
    assert not matches_selector({"job-name": "k"}, "job-name=j")
    assert matches_selector({"a": "b"}, "a==b,c!=d")


# -- config ---------------------------------------------------------------------------------------

CONFIG = {
    "defaults": {"namespace": "cresta-cron"},
    "clusters": [
        {
            "name": "us-east-1-prod",
            "customers": [{"id": "sunbit", "profile": "default"}, {"id": "customer2"}],
        },
        {
            "name": "voice-prod",
            "customers": ["acme"],
            "temporal_namespace": "voice",
            "kubernetes_conn_id": "k8s_voice",
        },
    ],
}


def test_config_parses_with_defaults_and_per_cluster_overrides():
    targets = cfg.parse(CONFIG, "test")
    assert [(t.cluster, t.customer, t.profile) for t in targets] == [
        ("us-east-1-prod", "sunbit", "default"),
        ("us-east-1-prod", "customer2", "default"),
        ("voice-prod", "acme", "default"),
    ]
    first, _, voice = targets
    assert (first.kubernetes_conn_id, first.temporal_conn_id) == (
        "kubernetes_us_east_1_prod",
        "temporal_us_east_1_prod",
    )
    assert (first.namespace, first.cronjob, first.temporal_namespace) == (
        "cresta-cron", "cron-batch-reindex-conversations", "ingestion",
    )  # fmt: skip
    assert (voice.kubernetes_conn_id, voice.temporal_namespace) == ("k8s_voice", "voice")


def test_config_filters():
    targets = cfg.parse(CONFIG, "test")
    assert [t.customer for t in cfg.select(targets, clusters=["us-east-1-prod"])] == ["sunbit", "customer2"]
    assert [t.cluster for t in cfg.select(targets, customers=["acme"])] == ["voice-prod"]
    with pytest.raises(ConfigurationError, match=r"Cluster filter \['eu'\] names no cluster"):
        cfg.select(targets, clusters=["eu"])
    with pytest.raises(ConfigurationError, match=r"Customer filter \['acme'\] names no customer"):
        cfg.select(targets, clusters=["us-east-1-prod"], customers=["acme"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"clusters": [', "config.json is not valid JSON"),
        ({"clusters": []}, 'needs a non-empty "clusters" list'),
        ({"clusters": [{"customers": ["a"]}]}, r'clusters\[0\] needs a "name"'),
        (
            {"clusters": [{"name": "a", "customers": [{"profile": "p"}]}]},
            r'clusters\[0\].customers\[0\] needs an "id"',
        ),
        ({"clusters": [{"name": "a", "customers": ["x"], "cronjbo": "y"}]}, r"unknown keys \['cronjbo'\]"),
        (
            {"clusters": [{"name": "a", "customers": ["x"]}, {"name": "a", "customers": ["y"]}]},
            "listed twice",
        ),
    ],
)
def test_bad_configs_name_the_source_and_the_field(raw, message):
    with pytest.raises(ConfigurationError, match=message):
        cfg.parse(raw, "config.json")


# -- errors ---------------------------------------------------------------------------------------


def test_api_errors_name_the_object_and_what_to_do():
    kw = {"namespace": "cresta-cron", "cluster": "us-east-1-prod", "conn_id": "kubernetes_us"}
    forbidden = api_error(403, verb="get", resource="cronjobs", name="cj", message="denied", **kw)
    assert isinstance(forbidden, KubernetesForbiddenError) and isinstance(forbidden, ConfigurationError)
    assert "refused to get cronjobs/cj in namespace cresta-cron on cluster us-east-1-prod" in str(forbidden)
    assert "get cronjobs; create, get and delete jobs; list pods; get pods/log" in str(forbidden)
    missing = api_error(404, verb="get", resource="cronjobs", name="cj", **kw)
    assert isinstance(missing, KubernetesObjectNotFoundError) and "CronJob cj not found" in str(missing)
    assert isinstance(api_error(500, verb="list", resource="pods", name=None, **kw), KubernetesApiError)


# -- tracking -------------------------------------------------------------------------------------


def test_tracking_document_and_summary():
    jobs = [
        {"cluster": "us", "customer": "a", "workflows": [{"workflow_id": "w1"}, {"workflow_id": "w2"}]},
        {"cluster": "us", "customer": "b", "workflows": [{"workflow_id": "w3"}]},
        {"cluster": "eu", "customer": "a", "workflows": [{"workflow_id": "w4"}]},
    ]
    statuses = {"w1": "Completed", "w2": "Failed", "w3": "Completed", "w4": None}
    doc = tracking_document(jobs, statuses, run_id="r")
    assert doc["run_id"] == "r" and doc["jobs"][0]["workflow_ids"] == ["w1", "w2"]
    assert [w["status"] for j in doc["jobs"] for w in j["workflows"]] == [
        "Completed",
        "Failed",
        "Completed",
        "NotFound",
    ]
    s = doc["summary"]
    assert (s["total"], s["counts"], s["failed"], s["not_found"]) == (
        4, {"Completed": 2, "Failed": 1, "NotFound": 1}, ["w2"], ["w4"],
    )  # fmt: skip
    assert s["clusters"]["us"]["counts"] == {"Completed": 2, "Failed": 1}
    assert s["clusters"]["us"]["customers"]["a"]["failed"] == ["w2"]
    assert s["clusters"]["us"]["customers"]["b"]["failed"] == []
    assert (
        failure_message(s, statuses)
        == "1 workflow(s) did not complete: w2 (Failed); 1 workflow(s) are unknown to Temporal: w4"
    )
    assert failure_message(tracking_document(jobs[2:], {"w4": "Completed"})["summary"]) is None
